package ovn

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// testSwitch returns a small logical switch, sw0, with ports p1 (port
// security 00:..:01 10.0.0.1), p2 and p3, written the way ovn-northd writes
// its flows.
func testSwitch() *Southbound {
	lf := func(uuid, pipeline string, table, prio int, match, actions, stage string) LogicalFlow {
		return LogicalFlow{UUID: uuid, Datapath: "dp0", Pipeline: pipeline, TableID: table, Priority: prio,
			Match: match, Actions: actions, StageName: stage}
	}
	return &Southbound{
		Datapaths: []Datapath{{UUID: "dp0", TunnelKey: 1, ExternalIDs: map[string]string{"name": "sw0", "logical-switch": "ls0"}}},
		Ports: []Port{
			{UUID: "pb1", Name: "p1", Datapath: "dp0", TunnelKey: 1, PortSecurity: []string{"00:00:00:00:00:01 10.0.0.1"}},
			{UUID: "pb2", Name: "p2", Datapath: "dp0", TunnelKey: 2},
			{UUID: "pb3", Name: "p3", Datapath: "dp0", TunnelKey: 3},
		},
		MulticastGroups: []MulticastGroup{{UUID: "mc1", Name: "_MC_flood", Datapath: "dp0", TunnelKey: 32768, Ports: []string{"pb1", "pb2", "pb3"}}},
		AddressSets:     []AddressSet{{UUID: "as1", Name: "blocked", Addresses: []string{"10.0.0.66"}}},
		LogicalFlows: []LogicalFlow{
			lf("00000001-0000-0000-0000-000000000000", "ingress", 0, 50, "1", "reg0[15] = check_in_port_sec(); next;", "ls_in_check_port_sec"),
			lf("00000002-0000-0000-0000-000000000000", "ingress", 1, 50, "reg0[15] == 1", "drop;", "ls_in_apply_port_sec"),
			lf("00000003-0000-0000-0000-000000000000", "ingress", 1, 0, "1", "next;", "ls_in_apply_port_sec"),
			lf("00000004-0000-0000-0000-000000000000", "ingress", 2, 100, "ip4 && ip4.dst == $blocked", "drop;", "ls_in_acl"),
			lf("00000005-0000-0000-0000-000000000000", "ingress", 2, 0, "1", "next;", "ls_in_acl"),
			lf("00000006-0000-0000-0000-000000000000", "ingress", 3, 70, "eth.mcast", "outport = \"_MC_flood\"; output;", "ls_in_l2_lkup"),
			lf("00000007-0000-0000-0000-000000000000", "ingress", 3, 50, "eth.dst == 00:00:00:00:00:02", "outport = \"p2\"; output;", "ls_in_l2_lkup"),
			lf("00000008-0000-0000-0000-000000000000", "ingress", 3, 50, "eth.dst == 00:00:00:00:00:03", "outport = \"p3\"; output;", "ls_in_l2_lkup"),
			lf("00000009-0000-0000-0000-000000000000", "egress", 0, 100, "ip4 && ip.ttl == 1", "drop;", "ls_out_ttl"),
			lf("0000000a-0000-0000-0000-000000000000", "egress", 0, 0, "1", "output;", "ls_out_apply"),
		},
	}
}

const (
	udpP1toP2 = `inport == "p1" && eth.src == 00:00:00:00:00:01 && eth.dst == 00:00:00:00:00:02 && ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64 && udp.dst == 53`
	spoofed   = `inport == "p1" && eth.src == 00:00:00:00:00:09 && eth.dst == 00:00:00:00:00:02 && ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64`
	bcast     = `inport == "p1" && eth.src == 00:00:00:00:00:01 && eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && arp.sha == 00:00:00:00:00:01 && arp.spa == 10.0.0.1 && arp.tpa == 10.0.0.2`
	toBlocked = `inport == "p1" && eth.src == 00:00:00:00:00:01 && eth.dst == 00:00:00:00:00:02 && ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.66 && ip.ttl == 64`
)

func mustTrace(t *testing.T, tr *Translator, mf string) *TraceResult {
	t.Helper()
	res, err := tr.Trace(TraceRequest{Datapath: "sw0", Microflow: mf})
	require.NoError(t, err)
	return res
}

func outputs(res *TraceResult) string {
	var ports []string
	for _, d := range res.Outputs {
		ports = append(ports, d.Port)
	}
	return strings.Join(ports, ",")
}

func TestTraceSwitch(t *testing.T) {
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(testSwitch()))
	require.Equal(t, Stats{LogicalFlows: 10, Rules: 10}, tr.Stats())

	tests := []struct {
		name, mf, outputs, minimal string
	}{
		{"unicast", udpP1toP2, "p2", "output(\"p2\");\n"},
		{"port security drops a spoofed source", spoofed, "", ""},
		{"broadcast floods every port but the input", bcast, "p2,p3", "output(\"p2\");\noutput(\"p3\");\n"},
		{"address set ACL drops", toBlocked, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustTrace(t, tr, tt.mf)
			require.Equal(t, tt.outputs, outputs(res))
			require.Equal(t, tt.minimal, trace.Minimal(res.Trace))
		})
	}
}

func TestTraceDetailedShowsTables(t *testing.T) {
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(testSwitch()))
	res := mustTrace(t, tr, udpP1toP2)
	want := `
ingress(dp="sw0", inport="p1")
------------------------------
 0. ls_in_check_port_sec: 1, priority 50, uuid 00000001
    reg0[15] = check_in_port_sec();
    next;
 3. ls_in_l2_lkup: eth.dst == 00:00:00:00:00:02, priority 50, uuid 00000007
    outport = "p2";
    output;

egress(dp="sw0", inport="p1", outport="p2")
-------------------------------------------
 0. ls_out_apply: 1, priority 0, uuid 0000000a
    output;
    /* output to "p2", type "" */
`
	require.Equal(t, want, trace.Detailed(res.Trace))
}

// The megaflow mask holds exactly the bits the decisions depended on.
func TestTraceMegaflowMask(t *testing.T) {
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(testSwitch()))
	res := mustTrace(t, tr, udpP1toP2)
	m := &res.Mask
	require.Equal(t, field.Ones(48), m.Get(field.EthDst), "l2 lookup read eth.dst")
	require.Equal(t, field.Ones(48), m.Get(field.EthSrc), "port security read eth.src")
	require.Equal(t, field.Ones(32), m.Get(field.IPv4Dst), "the ACL read ip4.dst")
	require.True(t, m.Get(field.UDPDst).IsZero(), "nothing read udp.dst")
	require.True(t, m.Get(field.IPv6Src).IsZero(), "nothing read ip6.src")
}

func TestApplyMatchesFullLoad(t *testing.T) {
	base := testSwitch()
	tests := []struct {
		name string
		ch   Change
	}{
		{"address set grows", Change{Updated: Southbound{AddressSets: []AddressSet{{UUID: "as1", Name: "blocked", Addresses: []string{"10.0.0.66", "10.0.0.2"}}}}}},
		{"flow added", Change{Updated: Southbound{LogicalFlows: []LogicalFlow{{UUID: "0000000b-0000-0000-0000-000000000000", Datapath: "dp0",
			Pipeline: "ingress", TableID: 2, Priority: 200, Match: "udp.dst == 53", Actions: "drop;"}}}}},
		{"flow deleted", Change{Deleted: map[string][]string{TableLogicalFlow: {"00000007-0000-0000-0000-000000000000"}}}},
		{"port renumbered", Change{Updated: Southbound{Ports: []Port{{UUID: "pb2", Name: "p2", Datapath: "dp0", TunnelKey: 7}}}}},
		{"port removed", Change{Deleted: map[string][]string{TablePortBinding: {"pb3"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inc := NewTranslator(Options{})
			require.NoError(t, inc.Load(base))
			require.NoError(t, inc.Apply(&tt.ch))

			full := NewTranslator(Options{})
			require.NoError(t, full.Load(&inc.sb))
			require.Equal(t, full.Stats(), inc.Stats())
			for _, mf := range []string{udpP1toP2, spoofed, bcast, toBlocked} {
				a, b := mustTrace(t, inc, mf), mustTrace(t, full, mf)
				require.Equal(t, trace.Detailed(b.Trace), trace.Detailed(a.Trace), mf)
				require.Equal(t, b.Mask, a.Mask, mf)
			}
		})
	}
}

// A change recompiles only the flows it touches: the rules of every other
// flow are the same objects afterwards.
func TestApplyLeavesUntouchedFlowsAlone(t *testing.T) {
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(testSwitch()))
	before := map[string]*compiledFlow{}
	for u, cf := range tr.flows {
		before[u] = cf
	}
	// The address set is used by one flow (00000004); one flow changes.
	require.NoError(t, tr.Apply(&Change{Updated: Southbound{
		AddressSets:  []AddressSet{{UUID: "as1", Name: "blocked", Addresses: []string{"10.0.0.77"}}},
		LogicalFlows: []LogicalFlow{{UUID: "00000005-0000-0000-0000-000000000000", Datapath: "dp0", Pipeline: "ingress", TableID: 2, Priority: 0, Match: "1", Actions: "next;"}},
	}}))
	var recompiled []string
	for u, cf := range tr.flows {
		if before[u] != cf {
			recompiled = append(recompiled, u[:8])
		}
	}
	sort.Strings(recompiled)
	require.Equal(t, []string{"00000004", "00000005"}, recompiled)
	require.Equal(t, "", outputs(mustTrace(t, tr, strings.Replace(toBlocked, "10.0.0.66", "10.0.0.77", 1))), "the new address is blocked")
	require.Equal(t, "p2", outputs(mustTrace(t, tr, toBlocked)), "the old one no longer is")
}

func TestBadFlowsAreSkippedAndNamed(t *testing.T) {
	sb := testSwitch()
	sb.LogicalFlows = append(sb.LogicalFlows,
		LogicalFlow{UUID: "bad-match", Datapath: "dp0", Pipeline: "ingress", TableID: 2, Priority: 10, Match: "ip4.dst == $nosuch", Actions: "next;"},
		LogicalFlow{UUID: "bad-action", Datapath: "dp0", Pipeline: "ingress", TableID: 2, Priority: 10, Match: "1", Actions: "frobnicate;"},
		LogicalFlow{UUID: "bad-table", Datapath: "dp0", Pipeline: "ingress", TableID: 40, Priority: 10, Match: "1", Actions: "next;"},
		LogicalFlow{UUID: "no-dp", Datapath: "gone", Pipeline: "egress", TableID: 0, Priority: 10, Match: "1", Actions: "next;"},
	)
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(sb))
	var got []string
	for _, s := range tr.Skipped() {
		got = append(got, s.UUID+": "+s.Reason)
	}
	require.Equal(t, []string{
		"bad-action: parsing actions failed: Syntax error at `frobnicate' expecting action.",
		"bad-match: parsing match failed: Syntax error at `$nosuch' expecting address set name.",
		"bad-table: table 40 is outside the 29 logical tables",
		"no-dp: logical flow has no datapath",
	}, got)
	require.Equal(t, 4, tr.Stats().Skipped)
	// The rest of the pipeline still works.
	require.Equal(t, "p2", outputs(mustTrace(t, tr, udpP1toP2)))
}

func TestMicroflowErrors(t *testing.T) {
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(testSwitch()))
	tests := []struct{ mf, want string }{
		{"inport == \"p1\" && ip4 && ip6", "error parsing flow: Constraints are contradictory."},
		{"inport == \"p1\" && tcp.dst == 80", "error parsing flow: Constraints are ambiguous: inport == \"p1\" && (eth.type == 0x800 || eth.type == 0x86dd) && ip.proto == 0x6 && tcp.dst == 0x50."},
		{"inport == \"p1\" && tcp.dst ==", "error parsing flow: Syntax error at end of input expecting constant."},
	}
	for _, tt := range tests {
		t.Run(tt.mf, func(t *testing.T) {
			_, err := tr.Trace(TraceRequest{Datapath: "sw0", Microflow: tt.mf})
			require.EqualError(t, err, tt.want)
		})
	}
	_, err := tr.Trace(TraceRequest{Datapath: "nosuch", Microflow: "1"})
	require.EqualError(t, err, `unknown datapath "nosuch"`)
	_, err = tr.Trace(TraceRequest{Microflow: `eth.src == 00:00:00:00:00:01`})
	require.EqualError(t, err, "error parsing flow: flow match expression does not match on inport")
	res, err := tr.Trace(TraceRequest{Microflow: udpP1toP2})
	require.NoError(t, err, "the datapath comes from the inport")
	require.Equal(t, "p2", outputs(res))
}

// A pipeline that loops through itself ends with an error, not a crash.
func TestTraceLoopIsBounded(t *testing.T) {
	sb := testSwitch()
	sb.LogicalFlows = []LogicalFlow{
		{UUID: "loop", Datapath: "dp0", Pipeline: "ingress", TableID: 0, Priority: 1, Match: "1", Actions: "next(0);"},
	}
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(sb))
	res := mustTrace(t, tr, udpP1toP2)
	require.Len(t, res.Errors, 1)
	require.Contains(t, res.Errors[0], "nested more than")
	require.Contains(t, fmt.Sprint(trace.Minimal(res.Trace)), "*** pipeline nested more than")
}
