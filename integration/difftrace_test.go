// Package integration holds ovsbpf's tests against real OVN daemons: the
// differential suite compares ovsbpfctl trace with ovn-trace on Southbound
// databases that a real ovn-northd built from the topologies in this
// package.
package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// ovsbpfctl is the path of the binary under test, built once by TestMain.
var ovsbpfctl string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ovsbpf-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ovsbpfctl = filepath.Join(dir, "ovsbpfctl")
	out, err := exec.Command("go", "build", "-o", ovsbpfctl, "github.com/ovsbpf/ovsbpf/cmd/ovsbpfctl").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building ovsbpfctl: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// traceCase is one packet to trace through a topology.
type traceCase struct {
	dp    string   // logical datapath the packet enters
	flow  string   // microflow
	ct    []string // --ct values, in order
	lbDst string   // --lb-dst
}

func (c traceCase) args() []string {
	var a []string
	for _, ct := range c.ct {
		a = append(a, "--ct", ct)
	}
	if c.lbDst != "" {
		a = append(a, "--lb-dst", c.lbDst)
	}
	return append(a, "--minimal", c.dp, c.flow)
}

// topology is an NB configuration and the packets to trace through it.
type topology struct {
	name  string
	build func(t *testing.T, c *ovntest.Central)
	cases []traceCase
}

var (
	commentRE = regexp.MustCompile(`/\*.*?\*/`)
	spaceRE   = regexp.MustCompile(`\s+`)
)

// normalize keeps what --minimal output says, without ovn-trace's first
// "#" line (the flow in OVS syntax), comments and white space.
func normalize(out string) []string {
	lines := strings.Split(out, "\n")
	if len(lines) > 0 && strings.HasPrefix(lines[0], "#") {
		lines = lines[1:]
	}
	var res []string
	for _, l := range lines {
		l = commentRE.ReplaceAllString(l, "")
		l = strings.TrimSpace(spaceRE.ReplaceAllString(l, " "))
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		res = append(res, l)
	}
	return res
}

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in string
		want     []string
	}{
		{"first line and comments go", "# ip,reg14=0x1\nct_next(ct_state=est|trk /* default (use --ct to customize) */) {\n    output(\"p2\");\n};\n",
			[]string{"ct_next(ct_state=est|trk ) {", `output("p2");`, "};"}},
		{"white space collapses", "#x\n  eth.dst   =\t00:00:00:00:00:02;\n\n", []string{"eth.dst = 00:00:00:00:00:02;"}},
		{"empty trace", "# ip\n", nil},
		{"later # lines are comments too", "# a\n# Minimal trace.\noutput(\"x\");\n", []string{`output("x");`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, normalize(tt.in)) })
	}
}

// run executes a program, bounded in time, and returns its standard
// output; on failure the error carries its standard error.
func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// minCompared is the least number of microflows the suite compares.
const minCompared = 400

// TestDiffTrace compares ovsbpfctl trace --minimal with ovn-trace --minimal
// on every topology and microflow, and checks that ovsbpfctl lflow check
// accepts every logical flow northd wrote.
func TestDiffTrace(t *testing.T) {
	var compared atomic.Int64
	corpus := newLflowCorpus()
	t.Run("topologies", func(t *testing.T) {
		for _, topo := range topologies() {
			t.Run(topo.name, func(t *testing.T) {
				t.Parallel()
				n, nonEmpty := diffTopology(t, topo, corpus)
				compared.Add(int64(n))
				t.Logf("%s: %d microflows agree with ovn-trace, %d of them change or deliver the packet", topo.name, n, nonEmpty)
				// A suite of packets that all get dropped would agree
				// trivially; most must do something.
				require.GreaterOrEqual(t, 2*nonEmpty, n, "fewer than half the microflows of %s do anything", topo.name)
			})
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("%d microflows compared in all", compared.Load())
	require.GreaterOrEqual(t, compared.Load(), int64(minCompared))
	corpus.check(t)
}

// diffTopology compares every microflow of topo and returns how many agree
// and how many of those have a non-empty minimal trace.
func diffTopology(t *testing.T, topo topology, corpus *lflowCorpus) (agree, nonEmpty int) {
	c := ovntest.StartCentral(t)
	topo.build(t, c)
	c.Sync(t)
	corpus.add(t, c)

	out, err := run(ovsbpfctl, "lflow", "check", "--db", c.SB.Remote())
	require.NoError(t, err, "ovsbpfctl lflow check:\n%s", out)

	for _, tc := range topo.cases {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		want, err := c.Trace(ctx, tc.args()...)
		cancel()
		if err != nil || strings.Contains(want, "error parsing flow") {
			t.Errorf("ovn-trace rejects the microflow, fix the test case: %v\n%s\nargs: %q", err, want, tc.args())
			continue
		}
		got, err := run(ovsbpfctl, append([]string{"trace", "--db", c.SB.Remote()}, tc.args()...)...)
		if err != nil {
			t.Errorf("ovsbpfctl trace failed: %v\n%s\nargs: %q", err, got, tc.args())
			continue
		}
		w, g := normalize(want), normalize(got)
		if strings.Join(w, "\n") != strings.Join(g, "\n") {
			t.Errorf("trace differs from ovn-trace\nargs: %q\n--- ovn-trace\n%s\n--- ovsbpfctl\n%s\n--- diff\n%s",
				tc.args(), strings.Join(w, "\n"), strings.Join(g, "\n"), lineDiff(w, g))
			continue
		}
		agree++
		if len(w) > 0 {
			nonEmpty++
		}
	}
	return agree, nonEmpty
}

// lineDiff shows which lines only one side has, in order.
func lineDiff(a, b []string) string {
	var out strings.Builder
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			fmt.Fprintf(&out, "  %s\n", a[i])
			i++
			j++
		case i < len(a) && (j >= len(b) || !contains(b[j:], a[i])):
			fmt.Fprintf(&out, "- %s\n", a[i])
			i++
		default:
			fmt.Fprintf(&out, "+ %s\n", b[j])
			j++
		}
	}
	return out.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lflowCorpus collects every (match, actions) pair northd wrote, the seed
// corpus of the parser fuzzers in flowxlate/ovn.
type lflowCorpus struct {
	mu    sync.Mutex
	pairs map[string]bool
}

const corpusFile = "../flowxlate/ovn/testdata/northd_lflows.txt"

func newLflowCorpus() *lflowCorpus { return &lflowCorpus{pairs: map[string]bool{}} }

func (lc *lflowCorpus) add(t *testing.T, c *ovntest.Central) {
	out := c.SBCtl(t, "--format=json", "--columns=match,actions", "list", "Logical_Flow")
	var table struct{ Data [][2]string }
	require.NoError(t, json.Unmarshal([]byte(out), &table))
	lc.mu.Lock()
	defer lc.mu.Unlock()
	for _, r := range table.Data {
		clean := strings.NewReplacer("\t", " ", "\n", " ")
		lc.pairs[clean.Replace(r[0])+"\t"+clean.Replace(r[1])] = true
	}
}

// check requires the committed corpus to hold every pair seen. With
// OVSBPF_WRITE_LFLOWS=1 it rewrites the corpus first.
func (lc *lflowCorpus) check(t *testing.T) {
	var lines []string
	for p := range lc.pairs {
		lines = append(lines, p)
	}
	sort.Strings(lines)
	if os.Getenv("OVSBPF_WRITE_LFLOWS") == "1" {
		require.NoError(t, os.WriteFile(corpusFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644))
		t.Logf("wrote %d (match, actions) pairs to %s", len(lines), corpusFile)
	}
	b, err := os.ReadFile(corpusFile)
	require.NoError(t, err)
	have := map[string]bool{}
	for _, l := range strings.Split(string(b), "\n") {
		have[l] = true
	}
	var missing []string
	for _, l := range lines {
		if !have[l] {
			missing = append(missing, l)
		}
	}
	require.Empty(t, missing, "the fuzz seed corpus misses flows northd wrote; rerun with OVSBPF_WRITE_LFLOWS=1")
}
