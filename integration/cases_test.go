package integration

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Unit tests of the suite itself: no OVN daemons.

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"first # line skipped, comments stripped",
			"# ip,reg14=0x1,vlan_tci=0x0000\nct_next(ct_state=est|trk /* default (use --ct to customize) */) {\n    output(\"p2\");\n};\n",
			[]string{"ct_next(ct_state=est|trk ) {", `output("p2");`, "};"}},
		{"white space collapsed and blank lines ignored",
			"# x\n\n  eth.dst   =\t00:00:00:00:00:02;\n\n\n  output(\"p2\");  \n",
			[]string{"eth.dst = 00:00:00:00:00:02;", `output("p2");`}},
		{"empty trace (a drop)", "# ip\n", nil},
		{"no output at all", "", nil},
		{"later # lines are comments", "# a\n# Minimal trace.\noutput(\"x\");\n   # indented\n", []string{`output("x");`}},
		{"lines before the first # line are dropped", "warning: something\n# a\noutput(\"x\");\n", []string{`output("x");`}},
		{"output without any # line is kept whole", "output(\"x\");\n", []string{`output("x");`}},
		{"comment spanning lines", "# a\narp { /* one\ntwo */ eth.dst = ff:ff:ff:ff:ff:ff;\n};\n",
			[]string{"arp {", "eth.dst = ff:ff:ff:ff:ff:ff;", "};"}},
		{"comment then code on one line", "# a\n/* x */ next;\n", []string{"next;"}},
		{"comment-only line vanishes", "# a\n    /* no ct_dnat */\nnext;\n", []string{"next;"}},
		{"CRLF", "# a\r\noutput(\"x\");\r\n", []string{`output("x");`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, normalize(tt.in)) })
	}
}

func TestSameTrace(t *testing.T) {
	tests := []struct {
		name string
		a, b string
		same bool
	}{
		{"spacing and comments aside",
			"# ip\nct_dnat(10.0.0.2) /* x */ {\n    output(\"p\");\n};\n",
			"#ip,reg14=0x1\nct_dnat( 10.0.0.2 ){\noutput(\"p\") ;\n} ;", true},
		{"spaces around = and |", "# a\neth.dst = 00:00:00:00:00:01;\n", "# a\neth.dst=00:00:00:00:00:01;\n", true},
		{"spaces around |", "# a\nct_next(ct_state=est|trk) {\n", "# a\nct_next(ct_state=est | trk){\n", true},
		{"merged tokens differ", "# a\nnext(pipeline=egress, table=1);\n", "# a\nnext(pipelineegress, table=1);\n", false},
		{"word boundary kept", "# a\nct_lb_mark;\n", "# a\nct_lb _mark;\n", false},
		{"other port", "# a\noutput(\"p1\");\n", "# a\noutput(\"p2\");\n", false},
		{"extra line", "# a\noutput(\"p1\");\n", "# a\noutput(\"p1\");\noutput(\"p2\");\n", false},
		{"line order matters", "# a\nx;\ny;\n", "# a\ny;\nx;\n", false},
		{"both empty", "# a\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.same, sameTrace(normalize(tt.a), normalize(tt.b)), "%q vs %q", tt.a, tt.b)
		})
	}
}

func TestLineDiff(t *testing.T) {
	got := lineDiff([]string{"a", "b", "c", "d = 1;"}, []string{"a", "c", "x", "d=1 ;"})
	require.Equal(t, "--- ovn-trace\n+++ under test\n  a\n- b\n  c\n+ x\n  d = 1;\n", got)
	require.Equal(t, "--- ovn-trace\n+++ under test\n- a\n", lineDiff([]string{"a"}, nil))
}

var (
	ipFlowRE = regexp.MustCompile(`\bip[46]\.|\bicmp|\btcp\.|\budp\.|\bsctp\.`)
	hasTTLRE = regexp.MustCompile(`\bip\.ttl == \d+`)
	inportRE = regexp.MustCompile(`^inport == "[^"]+" && eth\.src == \S+ && eth\.dst == \S+`)
)

// The cases are well formed before any daemon starts: enough of them,
// unique, every IP packet with a TTL, every packet from a port with both
// MACs. (That packets to a VIP give --lb-dst is checked by running the
// suite with OVSBPF_DIFF_SELF=1: ovn-trace then runs twice per case and a
// random backend shows as a difference.)
func TestTopologyCases(t *testing.T) {
	total := 0
	names := map[string]bool{}
	for _, topo := range topologies() {
		require.False(t, names[topo.name], "topology name %s repeats", topo.name)
		names[topo.name] = true
		require.GreaterOrEqual(t, len(topo.cases), 40, "%s has too few cases", topo.name)
		seen := map[string]int{}
		all := append(append([]traceCase(nil), topo.cases...), topo.ovnTraceAborts...)
		for i, c := range all {
			key := strings.Join(c.args("--minimal"), "\x00")
			if j, dup := seen[key]; dup {
				t.Errorf("%s: case %d (%s) repeats case %d (%s)", topo.name, i, c.label, j, all[j].label)
			}
			seen[key] = i
			require.NotEmpty(t, c.label, "%s case %d", topo.name, i)
			require.NotEmpty(t, c.dp, "%s case %d", topo.name, i)
			if ipFlowRE.MatchString(c.flow) && !hasTTLRE.MatchString(c.flow) {
				t.Errorf("%s case %d (%s): IP packet without ip.ttl: %s", topo.name, i, c.label, c.flow)
			}
			if !inportRE.MatchString(c.flow) {
				t.Errorf("%s case %d (%s): want inport, eth.src and eth.dst first: %s", topo.name, i, c.label, c.flow)
			}
		}
		total += len(topo.cases)
	}
	require.GreaterOrEqual(t, total, minCompared)
	t.Logf("%d topologies, %d cases", len(names), total)
}
