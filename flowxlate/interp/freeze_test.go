package interp_test

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// noCT is the bridge environment with a Conntrack that must not be asked:
// in Freezing mode only the datapath answers conntrack.
type noCT struct {
	bridge
	t *testing.T
}

func (e noCT) Conntrack(ir.ExecContext, *ir.CT) (string, bool) {
	e.t.Fatal("Freezing mode asked Env.Conntrack")
	return "", false
}

var zoneReg = field.Subfield{Field: field.Reg(2), Bits: 16}

// statefulProgram is a stateful firewall in OpenFlow style:
//
//	table 0: in_port 1 → zone 5, in_port 2 → zone 7 (in reg2), then table 1;
//	table 1: TCP → ct(zone=reg2, table=2); the rest goes out of port 9;
//	table 2: +new+trk → ct(commit, zone=reg2, exec(ct_mark=1/1,
//	         eth_src → ct_label[0..47])), out of port 3;
//	         +est+trk → out of port 4; anything else is dropped.
func statefulProgram() *ir.Program {
	p := ir.NewProgram()
	pl := p.Pipeline(bridgeID, "br0")
	t0 := pl.Table(0)
	for port, zone := range map[uint64]uint64{1: 5, 2: 7} {
		t0.Insert(&ir.Rule{Priority: 10, Match: cmp(field.InPort, port), Origin: origin("zone"),
			Actions: []ir.Action{
				&ir.SetField{Src: "load:zone->reg2", Dst: field.Whole(field.Reg(2)), Value: field.U64(zone)},
				&ir.Next{Src: "resubmit(,1)", Stage: ir.SameStage, Table: 1},
			}})
	}
	t1 := pl.Table(1)
	t1.Insert(&ir.Rule{Priority: 10, Match: &ir.And{Terms: []ir.Match{cmp(field.EthType, 0x800), cmp(field.IPProto, 6)}}, Origin: origin("tcp"),
		Actions: []ir.Action{&ir.CT{Src: "ct(zone=reg2,table=2)", Zone: zoneReg, Recirc: true, Table: 2}}})
	t1.Insert(&ir.Rule{Priority: 0, Match: ir.Bool(true), Origin: origin("other"),
		Actions: []ir.Action{&ir.SetField{Src: "load:9->reg1", Dst: field.Whole(field.Reg(1)), Value: field.U64(9)}, &ir.Output{Src: "output"}}})
	t2 := pl.Table(2)
	trk := func(bit uint64) ir.Match {
		return &ir.Cmp{Field: field.CTState, Value: field.U64(bit | field.CSTrk), Mask: field.U64(bit | field.CSTrk)}
	}
	t2.Insert(&ir.Rule{Priority: 20, Match: trk(field.CSNew), Origin: origin("new"),
		Actions: []ir.Action{
			&ir.CT{Src: "ct(commit,zone=reg2,exec(...))", Zone: zoneReg, Commit: true, Exec: []ir.Action{
				&ir.SetField{Src: "set_field:1/1->ct_mark", Dst: field.Subfield{Field: field.CTMark, Bits: 1}, Value: field.U64(1)},
				&ir.Move{Src: "move:eth_src->ct_label[0..47]", Dst: field.Subfield{Field: field.CTLabel, Bits: 48}, From: field.Whole(field.EthSrc)},
			}},
			&ir.SetField{Src: "load:3->reg1", Dst: field.Whole(field.Reg(1)), Value: field.U64(3)},
			&ir.Output{Src: "output"},
		}})
	t2.Insert(&ir.Rule{Priority: 10, Match: trk(field.CSEst), Origin: origin("est"),
		Actions: []ir.Action{&ir.SetField{Src: "load:4->reg1", Dst: field.Whole(field.Reg(1)), Value: field.U64(4)}, &ir.Output{Src: "output"}}})
	return p
}

func decideFreezing(t *testing.T, p *ir.Program, k field.Key) *interp.Result {
	return interp.New(p, noCT{t: t}).Freezing().Decide(k, func(c ir.ExecContext) { c.At(bridgeID, 0).Lookup() })
}

func tcpFrom(port uint64) field.Key {
	return packet(map[field.ID]uint64{field.InPort: port, field.EthType: 0x800, field.IPProto: 6,
		field.EthSrc: 0x0a0000000001, field.IPv4Src: 0x0a000001, field.TCPSrc: 1234, field.TCPDst: 80})
}

// A recirculating ct ends the path with a freeze in the zone its register
// holds, and the mask covers what chose that zone.
func TestFreezingStopsAtConntrack(t *testing.T) {
	for _, tt := range []struct {
		port uint64
		zone uint16
	}{{1, 5}, {2, 7}} {
		res := decideFreezing(t, statefulProgram(), tcpFrom(tt.port))
		require.Empty(t, res.Errors)
		require.Empty(t, res.Steps, "nothing leaves before conntrack")
		require.False(t, res.Forked)
		require.Len(t, res.Freezes, 1)
		fz := res.Freezes[0]
		require.Equal(t, tt.zone, fz.CT.Zone)
		require.False(t, fz.CT.CT.Commit)
		require.Equal(t, bridgeID, fz.Frozen.Pipeline)
		require.Equal(t, 2, fz.Frozen.Table)
		require.Equal(t, field.U64(uint64(tt.zone)), fz.Frozen.State.Get(field.Reg(2)))
		st := fz.Frozen.State
		st.Set(field.Reg(2), field.Value{})
		require.Equal(t, field.Key{}, st, "the frozen state holds registers and metadata only")
		in := tcpFrom(tt.port)
		require.Equal(t, in.Get(field.TCPDst), fz.Key.Get(field.TCPDst), "the freeze carries the packet")
		require.Equal(t, field.Ones(32), res.Mask.Get(field.InPort), "in_port chose the zone")
		require.Equal(t, field.Ones(16), res.Mask.Get(field.Reg(2)), "the zone register was read")
	}
}

// Resuming with the state the datapath's conntrack filled in goes on at
// the frozen table: a new connection is committed (zone, mark and label
// evaluated) before its output, an established one is output, an invalid
// one dropped; the mask covers the conntrack state read.
func TestResume(t *testing.T) {
	p := statefulProgram()
	first := decideFreezing(t, p, tcpFrom(2))
	require.Len(t, first.Freezes, 1)
	fr := first.Freezes[0].Frozen
	tests := []struct {
		name  string
		state uint64
		steps []string // "commit" or an output port
	}{
		{"new", field.CSNew | field.CSTrk, []string{"commit", "0x3"}},
		{"established", field.CSEst | field.CSTrk, []string{"0x4"}},
		{"invalid", field.CSInv | field.CSTrk, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := first.Freezes[0].Key
			k.Set(field.Reg(2), field.Value{}) // the datapath's key holds no registers
			k.Set(field.CTState, field.U64(tt.state))
			k.Set(field.CTZone, field.U64(7))
			res := interp.New(p, noCT{t: t}).Resume(k, fr)
			require.Empty(t, res.Errors)
			require.Empty(t, res.Freezes)
			var steps []string
			for _, s := range res.Steps {
				if s.CT != nil {
					steps = append(steps, "commit")
					require.Equal(t, uint16(7), s.CT.Zone, "the frozen register gives the zone")
					require.True(t, s.CT.CT.Commit)
					require.Equal(t, uint32(1), s.CT.Mark)
					require.Equal(t, uint32(1), s.CT.MarkMask)
					require.Equal(t, field.U64(0x0a0000000001), s.CT.Label)
					require.Equal(t, field.Ones(48), s.CT.LabelMask)
					continue
				}
				steps = append(steps, s.Port)
			}
			require.Equal(t, tt.steps, steps)
			require.False(t, res.Mask.Get(field.CTState).IsZero(), "the decision depends on ct_state")
			require.True(t, res.Mask.Get(field.CTMark).IsZero(), "a commit's mark write is not a packet change")
			require.True(t, res.Mask.Get(field.CTLabel).IsZero(), "a commit's label write is not a packet change")
			if tt.name == "new" {
				require.Equal(t, field.Ones(48), res.Mask.Get(field.EthSrc), "the label copies eth_src")
			}
		})
	}
}

// decision is what a run decides, with each step's key given as its
// difference from the packet that came in: packets that agree on the
// mask must get equal decisions.
type decision struct {
	steps   []step
	freezes []freeze
	forked  bool
	errors  []string
}

type step struct {
	port string
	ct   interp.CTCall
	diff field.Key
}

type freeze struct {
	ct     interp.CTCall
	frozen interp.Frozen
	diff   field.Key
}

// xorKey returns the packet bits in which a and b differ; registers and
// metadata are pipeline state, compared through Frozen.
func xorKey(a, b field.Key) field.Key {
	for i := range a {
		a[i] ^= b[i]
	}
	a.Set(field.Metadata, field.Value{})
	for i := 0; i < field.NumRegs; i++ {
		a.Set(field.Reg(i), field.Value{})
	}
	return a
}

func decisionOf(in field.Key, res *interp.Result) decision {
	d := decision{forked: res.Forked, errors: res.Errors}
	for _, s := range res.Steps {
		st := step{port: s.Port, diff: xorKey(s.Key, in)}
		if s.CT != nil {
			st.ct = *s.CT
		}
		d.steps = append(d.steps, st)
	}
	for _, f := range res.Freezes {
		d.freezes = append(d.freezes, freeze{ct: f.CT, frozen: f.Frozen, diff: xorKey(f.Key, in)})
	}
	return d
}

// agreeing returns a random packet that agrees with k on the bits of mask.
func agreeing(rng *rand.Rand, k, mask field.Key) field.Key {
	var out field.Key
	for i := range out {
		out[i] = k[i]&mask[i] | byte(rng.UintN(256))&^mask[i]
	}
	return out
}

// The soundness property of freezing: packets that agree with a packet on
// its mask get the same frozen state, zone, steps and rewrites, at pass 0
// and when resumed.
func TestFreezingMaskIsSufficient(t *testing.T) {
	p := statefulProgram()
	rng := rand.New(rand.NewPCG(8, 8))
	in := interp.New(p, noCT{t: t})
	seeds := []field.Key{tcpFrom(1), tcpFrom(2), tcpFrom(3)}
	udp := tcpFrom(1)
	udp.Set(field.IPProto, field.U64(17))
	seeds = append(seeds, udp)
	for _, seed := range seeds {
		res := decideFreezing(t, p, seed)
		want := decisionOf(seed, res)
		for range 200 {
			other := agreeing(rng, seed, res.Mask)
			other.Set(field.CTState, field.Value{}) // the parser zeroes these at pass 0
			other.Set(field.CTZone, field.Value{})
			other.Set(field.CTMark, field.Value{})
			other.Set(field.CTLabel, field.Value{})
			for i := 0; i < field.NumRegs; i++ {
				other.Set(field.Reg(i), field.Value{})
			}
			other.Set(field.Metadata, field.Value{})
			require.Equal(t, want, decisionOf(other, decideFreezing(t, p, other)))
		}
		for _, fz := range res.Freezes {
			for _, state := range []uint64{field.CSNew | field.CSTrk, field.CSEst | field.CSTrk, field.CSInv | field.CSTrk} {
				k := fz.Key
				k.Set(field.CTState, field.U64(state))
				r := in.Resume(k, fz.Frozen)
				want := decisionOf(k, r)
				for range 100 {
					other := agreeing(rng, k, r.Mask)
					require.Equal(t, want, decisionOf(other, in.Resume(other, fz.Frozen)))
				}
			}
		}
	}
}

// The frozen state is a value: the same state from two runs is equal and
// serves as a map key (the slow path dedups recirculation ids by it).
func TestFrozenIsAMapKey(t *testing.T) {
	p := statefulProgram()
	a := decideFreezing(t, p, tcpFrom(1)).Freezes[0].Frozen
	other := tcpFrom(1)
	other.Set(field.TCPSrc, field.U64(999))
	b := decideFreezing(t, p, other).Freezes[0].Frozen
	c := decideFreezing(t, p, tcpFrom(2)).Freezes[0].Frozen
	ids := map[interp.Frozen]int{a: 1}
	require.Equal(t, 1, ids[b], "the same state finds the same id")
	_, ok := ids[c]
	require.False(t, ok, "another zone is another state")
}

// Live actions after a recirculating ct in the same action list are a
// fork; a flood through two cts freezes twice. Both are reported.
func TestForksAndSeveralFreezes(t *testing.T) {
	ct := func(table int) *ir.CT {
		return &ir.CT{Src: "ct", Zone: zoneReg, Recirc: true, Table: table}
	}
	out := []ir.Action{&ir.SetField{Src: "load:3->reg1", Dst: field.Whole(field.Reg(1)), Value: field.U64(3)}, &ir.Output{Src: "output"}}
	tests := []struct {
		name    string
		actions []ir.Action
		freezes int
		steps   int
		forked  bool
	}{
		{"output then ct", append(append([]ir.Action{}, out...), ct(1)), 1, 1, false},
		{"ct then output", append([]ir.Action{ct(1)}, out...), 1, 1, true},
		{"two copies through ct", []ir.Action{&ir.Clone{Src: "clone", Body: []ir.Action{ct(1)}}, &ir.Clone{Src: "clone", Body: []ir.Action{ct(2)}}}, 2, 0, false},
		{"ct then ct", []ir.Action{ct(1), ct(2)}, 2, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ir.NewProgram()
			p.Pipeline(bridgeID, "br0").Table(0).Insert(&ir.Rule{Priority: 1, Match: ir.Bool(true), Origin: origin("all"), Actions: tt.actions})
			res := decideFreezing(t, p, tcpFrom(1))
			require.Len(t, res.Freezes, tt.freezes)
			require.Len(t, res.Steps, tt.steps)
			require.Equal(t, tt.forked, res.Forked)
			if tt.freezes == 1 {
				require.Equal(t, tt.steps-btoi(tt.forked), res.Freezes[0].Step, "the freeze's place among the steps")
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Without Freezing a run asks the environment, as traces do; with it a
// trace shows the ct call where the path stops.
func TestFreezingTrace(t *testing.T) {
	p := statefulProgram()
	res := interp.New(p, bridge{}).Run(tcpFrom(1), func(c ir.ExecContext) { c.At(bridgeID, 0).Lookup() })
	require.Empty(t, res.Freezes)
	require.Len(t, res.Deliveries(), 1, "the bridge's conntrack says new: committed and output")

	res = interp.New(p, noCT{t: t}).Freezing().Run(tcpFrom(1), func(c ir.ExecContext) { c.At(bridgeID, 0).Lookup() })
	require.Len(t, res.Freezes, 1)
	require.Contains(t, trace.Detailed(res.Trace), "ct(zone=5,table=2) freezes here")
}

// A frozen state with a value stack cannot come from this interpreter and
// is refused, not run with the stack lost.
func TestResumeRefusesAStack(t *testing.T) {
	res := interp.New(statefulProgram(), noCT{t: t}).Resume(tcpFrom(1), interp.Frozen{Pipeline: bridgeID, Table: 2, Stack: "x"})
	require.Len(t, res.Errors, 1)
	require.Empty(t, res.Steps)
}
