package interp_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// A front end that is not OVN: one bridge, OpenFlow-style tables, output to
// the port number in reg1.
type bridge struct{}

func (bridge) Output(c ir.ExecContext) {
	port := c.Read(field.Whole(field.Reg(1)))
	c.Trace(trace.Modify, "output:"+port.Hex())
	c.Deliver(port.Hex())
}

func (bridge) Conntrack(c ir.ExecContext, ct *ir.CT) (string, bool) {
	c.Key().Set(field.CTState, field.U64(field.CSTrk|field.CSNew))
	return "ct", true
}

type origin string

func (o origin) Describe() string { return string(o) }

func cmp(id field.ID, v uint64) *ir.Cmp {
	return &ir.Cmp{Field: id, Value: field.U64(v), Mask: field.Ones(field.Lookup(id).Bits)}
}

var bridgeID = ir.PipelineID{Domain: 1}

// bridgeProgram: table 0 sends IPv4 to table 1 after decrementing the TTL
// and drops the rest; table 1 picks the output port by destination MAC,
// through conntrack for TCP.
func bridgeProgram() *ir.Program {
	p := ir.NewProgram()
	pl := p.Pipeline(bridgeID, "br0")
	t0 := pl.Table(0)
	t0.Insert(&ir.Rule{Priority: 100, Match: cmp(field.EthType, 0x800), Origin: origin("ip"),
		Actions: []ir.Action{&ir.DecTTL{Src: "dec_ttl"}, &ir.Next{Src: "resubmit(,1)", Stage: ir.SameStage, Table: 1}}})
	t0.Insert(&ir.Rule{Priority: 0, Match: ir.Bool(true), Origin: origin("default")})
	t1 := pl.Table(1)
	t1.Insert(&ir.Rule{Priority: 100, Match: &ir.And{Terms: []ir.Match{cmp(field.EthDst, 0x02), cmp(field.IPProto, 6)}}, Origin: origin("tcp to 02"),
		Actions: []ir.Action{&ir.CT{Src: "ct(table=2)", Recirc: true, Table: 2}}})
	t1.Insert(&ir.Rule{Priority: 50, Match: cmp(field.EthDst, 0x02), Origin: origin("to 02"),
		Actions: []ir.Action{&ir.SetField{Src: "load:2->reg1", Dst: field.Whole(field.Reg(1)), Value: field.U64(2)}, &ir.Output{Src: "output"}}})
	pl.Table(2).Insert(&ir.Rule{Priority: 10, Match: cmp(field.CTState, field.CSTrk|field.CSNew), Origin: origin("new"),
		Actions: []ir.Action{&ir.SetField{Src: "load:3->reg1", Dst: field.Whole(field.Reg(1)), Value: field.U64(3)}, &ir.Output{Src: "output"}}})
	return p
}

func run(p *ir.Program, k field.Key) *interp.Result {
	return interp.New(p, bridge{}).Run(k, func(c ir.ExecContext) { c.At(bridgeID, 0).Lookup() })
}

func packet(kv map[field.ID]uint64) field.Key {
	var k field.Key
	for id, v := range kv {
		k.Set(id, field.U64(v))
	}
	return k
}

func TestGenericPipeline(t *testing.T) {
	tests := []struct {
		name    string
		pkt     field.Key
		ports   []string
		ttlOut  uint64
		maskTCP bool
	}{
		{"udp to 02", packet(map[field.ID]uint64{field.EthType: 0x800, field.EthDst: 2, field.IPProto: 17, field.IPTTL: 9}), []string{"0x2"}, 8, true},
		{"tcp through conntrack", packet(map[field.ID]uint64{field.EthType: 0x800, field.EthDst: 2, field.IPProto: 6, field.IPTTL: 9}), []string{"0x3"}, 8, true},
		{"arp dropped", packet(map[field.ID]uint64{field.EthType: 0x806, field.EthDst: 2}), nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(bridgeProgram(), tt.pkt)
			var ports []string
			for _, d := range res.Deliveries() {
				ports = append(ports, d.Port)
				require.Equal(t, field.U64(tt.ttlOut), d.Key.Get(field.IPTTL), "the packet leaves with its TTL decremented")
			}
			require.Equal(t, tt.ports, ports)
			require.Equal(t, field.Ones(16), res.Mask.Get(field.EthType), "every packet's type was read")
			require.Equal(t, tt.maskTCP, !res.Mask.Get(field.IPProto).IsZero(), "the protocol matters only for IPv4")
			require.True(t, res.Mask.Get(field.IPv4Src).IsZero(), "nothing read the source address")
		})
	}
}

// A megaflow covers every packet that agrees with the traced one on the
// mask: such packets take the same path.
func TestMaskIsSufficient(t *testing.T) {
	p := bridgeProgram()
	base := packet(map[field.ID]uint64{field.EthType: 0x800, field.EthDst: 2, field.IPProto: 17, field.IPTTL: 9, field.IPv4Src: 0x0a000001})
	res := run(p, base)
	other := base
	other.Set(field.IPv4Src, field.U64(0xc0a80001)) // outside the mask
	other.Set(field.TCPDst, field.U64(53))
	res2 := run(p, other)
	require.Equal(t, trace.Detailed(res.Trace), trace.Detailed(res2.Trace))
}

func TestEvalRecordsOnlyWhatDecides(t *testing.T) {
	m := &ir.Or{Terms: []ir.Match{cmp(field.TCPDst, 80), cmp(field.UDPDst, 53)}}
	k := packet(map[field.ID]uint64{field.TCPDst: 80})
	var mask field.Mask
	require.True(t, interp.Eval(m, &k, &mask))
	require.Equal(t, field.Ones(16), mask.Get(field.TCPDst))
	require.True(t, mask.Get(field.IPProto).IsZero())
}

func TestTracePrinting(t *testing.T) {
	root := &trace.Node{Kind: trace.Pipeline, Text: "ingress(dp=\"sw0\", inport=\"p1\")"}
	tbl := root.Add(trace.Table, " 1. ls_in_acl: ip4, priority 1, uuid 00000001")
	tbl.Add(trace.Action, "ct_next;")
	ct := tbl.Add(trace.Transformation, "ct_next(ct_state=est|trk)")
	t2 := ct.Add(trace.Table, " 2. ls_in_out: 1, priority 0, uuid 00000002")
	t2.Add(trace.Action, "eth.dst = 00:00:00:00:00:02;")
	t2.Add(trace.Modify, "eth.dst = 00:00:00:00:00:02")
	t2.Add(trace.Output, "/* output to \"p2\", type \"\" */")
	t2.Add(trace.Modify, "output(\"p2\")")
	nodes := []*trace.Node{root}

	require.Equal(t, "ct_next(ct_state=est|trk) {\n    eth.dst = 00:00:00:00:00:02;\n    output(\"p2\");\n};\n", trace.Minimal(nodes))
	require.Equal(t, `ingress(dp="sw0", inport="p1") {
    ct_next;
    ct_next(ct_state=est|trk) {
        eth.dst = 00:00:00:00:00:02;
        /* output to "p2", type "" */;
    };
};
`, trace.Summary(nodes))
	require.Contains(t, trace.Detailed(nodes), "\ningress(dp=\"sw0\", inport=\"p1\")\n------------------------------\n 1. ls_in_acl")
}

// A written header field is in the mask: the datapath rewrites only what
// differs between the packet and the result, which depends on the bits
// written. Registers are pipeline state and stay out of it.
func TestWritesAreInTheMask(t *testing.T) {
	p := ir.NewProgram()
	p.Pipeline(bridgeID, "br0").Table(0).Insert(&ir.Rule{Priority: 1, Match: ir.Bool(true), Origin: origin("rewrite"),
		Actions: []ir.Action{
			&ir.SetField{Src: "mod_dl_src", Dst: field.Whole(field.EthSrc), Value: field.U64(0x0a)},
			&ir.Move{Src: "move:eth_src->eth_dst", Dst: field.Whole(field.EthDst), From: field.Whole(field.EthSrc)},
			&ir.SetField{Src: "load:2->reg1", Dst: field.Whole(field.Reg(1)), Value: field.U64(2)},
			&ir.Output{Src: "output"},
		}})
	res := run(p, packet(map[field.ID]uint64{field.EthSrc: 0x0a, field.EthDst: 0x0b}))
	require.Len(t, res.Deliveries(), 1)
	require.Equal(t, field.U64(0x0a), res.Deliveries()[0].Key.Get(field.EthDst))
	require.Equal(t, field.Ones(48), res.Mask.Get(field.EthSrc), "eth_src was written (and read)")
	require.Equal(t, field.Ones(48), res.Mask.Get(field.EthDst), "eth_dst was written")
	require.Equal(t, field.Ones(32), res.Mask.Get(field.Reg(1)), "reg1 was read by the output")
}

// A TTL decrement of a TTL of 1 goes on as ovn-trace shows it, or, with
// DatapathTTL, ends the rule's actions as a datapath's dec_ttl does.
func TestTTLExpiry(t *testing.T) {
	tests := []struct {
		name     string
		ttl      uint64
		datapath bool
		ports    []string
		errors   int
	}{
		{"ttl 2", 2, false, []string{"0x2"}, 0},
		{"ttl 2, datapath", 2, true, []string{"0x2"}, 0},
		{"ttl 1 goes on to 0", 1, false, []string{"0x2"}, 0},
		{"ttl 1, datapath: no further", 1, true, nil, 0},
		{"ttl 0 underflows, reported, as ovn-trace does", 0, false, []string{"0x2"}, 1},
		{"ttl 0, datapath: no further", 0, true, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := interp.New(bridgeProgram(), bridge{})
			if tt.datapath {
				in = in.DatapathTTL()
			}
			pkt := packet(map[field.ID]uint64{field.EthType: 0x800, field.EthDst: 2, field.IPProto: 17, field.IPTTL: tt.ttl})
			res := in.Run(pkt, func(c ir.ExecContext) { c.At(bridgeID, 0).Lookup() })
			var ports []string
			for _, d := range res.Deliveries() {
				ports = append(ports, d.Port)
			}
			require.Equal(t, tt.ports, ports)
			require.Len(t, res.Errors, tt.errors)
			require.Equal(t, field.Ones(8), res.Mask.Get(field.IPTTL), "the decision depends on the TTL")
		})
	}
}
