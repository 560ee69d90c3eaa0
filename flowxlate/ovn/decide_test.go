package ovn

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// statefulSB is a Southbound database that ovn-northd 23.03.1 wrote for:
//
//	ovn-nbctl ls-add ls1
//	ovn-nbctl lsp-add ls1 vm1 -- lsp-set-addresses vm1 "00:00:00:00:01:01 10.0.1.1"
//	ovn-nbctl lsp-add ls1 vm2 -- lsp-set-addresses vm2 "00:00:00:00:01:02 10.0.1.2"
//	ovn-nbctl pg-add web vm2
//	ovn-nbctl acl-add web to-lport 1002 "outport == @web && ip4 && tcp.dst == 80" allow-related
//	ovn-nbctl acl-add web to-lport 1001 "outport == @web && ip" drop
//	ovn-nbctl ls-add ls2
//	ovn-nbctl lsp-add ls2 vm3 -- lsp-set-addresses vm3 "00:00:00:00:02:03 10.0.2.3"
//	ovn-nbctl lr-add lr0 -- set Logical_Router lr0 options:chassis=hv1
//	(router ports lrp1 00:00:00:00:01:fe 10.0.1.254/24 on ls1, lrp2
//	00:00:00:00:02:fe 10.0.2.254/24 on ls2, switch ports of type router)
//	ovn-nbctl lr-nat-add lr0 snat 10.0.2.100 10.0.1.0/24
//
// read back with ovsdb.ReadSouthbound and saved as JSON: a switch with an
// allow-related ACL behind a gateway router with SNAT.
const statefulSB = "testdata/stateful_sb.json"

// Datapath_Binding UUIDs in statefulSB.
const (
	ls1UUID = "f126ddb9-9dba-4945-91d4-e9e58f75c97b"
	lr0UUID = "adfd7c16-9d66-4afd-9745-9b53c09e576b"
)

// Pipelines and zones of the stateful topology.
var (
	ls1Ingress = ir.PipelineID{Domain: 1, Stage: pipelineIngress}
	ls1Egress  = ir.PipelineID{Domain: 1, Stage: pipelineEgress}
	lr0Egress  = ir.PipelineID{Domain: 3, Stage: pipelineEgress}

	statefulZones = Zones{
		"vm1": 11, "vm2": 12, "vm3": 13,
		lr0UUID + "_dnat": 21, lr0UUID + "_snat": 22,
		ls1UUID + "_dnat": 31, ls1UUID + "_snat": 32,
	}
)

func loadStateful(t testing.TB) *Translator {
	t.Helper()
	b, err := os.ReadFile(statefulSB)
	require.NoError(t, err)
	var sb Southbound
	require.NoError(t, json.Unmarshal(b, &sb))
	tr := NewTranslator(Options{})
	require.NoError(t, tr.Load(&sb))
	require.Empty(t, tr.Skipped(), "every logical flow of the topology compiles")
	tr.SetZones(statefulZones)
	return tr
}

func ip4(s string) field.Value { return field.FromBytes(netip.MustParseAddr(s).AsSlice()) }

func tcpPacket(srcMAC, dstMAC, src, dst string, dport uint64) field.Key {
	var k field.Key
	k.Set(field.EthSrc, mac(srcMAC))
	k.Set(field.EthDst, mac(dstMAC))
	k.Set(field.EthType, field.U64(field.EthTypeIPv4))
	k.Set(field.IPv4Src, ip4(src))
	k.Set(field.IPv4Dst, ip4(dst))
	k.Set(field.IPProto, field.U64(field.ProtoTCP))
	k.Set(field.IPTTL, field.U64(64))
	k.Set(field.TCPSrc, field.U64(40000))
	k.Set(field.TCPDst, field.U64(dport))
	k.Set(field.TCPFlags, field.U64(2))
	return k
}

// withCT is the packet as the datapath's conntrack hands it back.
func withCT(k field.Key, state uint64, zone uint16) field.Key {
	k.Set(field.CTState, field.U64(state))
	k.Set(field.CTZone, field.U64(uint64(zone)))
	for i := 0; i < field.NumRegs; i++ {
		k.Set(field.Reg(i), field.Value{}) // the datapath's key has no registers
	}
	return k
}

const (
	newTrk = field.CSNew | field.CSTrk
	estTrk = field.CSEst | field.CSTrk
	invTrk = field.CSInv | field.CSTrk
)

// describe lists a decision's steps and freeze as short strings:
// "output vm2", "commit zone=11 mark=0/1", "freeze ct_next zone=12".
func describe(d *Decision) []string {
	var out []string
	ct := func(c *CTCall) string {
		s := fmt.Sprintf("%s zone=%d", c.Flavor, c.Zone)
		if c.MarkMask != 0 {
			s += fmt.Sprintf(" mark=%d/%d", c.Mark, c.MarkMask)
		}
		return s
	}
	for _, s := range d.Steps {
		if s.CT != nil {
			out = append(out, "commit "+ct(s.CT))
			continue
		}
		out = append(out, "output "+s.Port)
	}
	for _, f := range d.Freezes {
		out = append(out, "freeze "+ct(&f.CT))
	}
	return out
}

// An allow-related ACL as a datapath runs it: each ct_next freezes in the
// zone of the port whose pipeline runs it, and each resumption goes on
// with the state the datapath's conntrack found.
func TestDecideAllowRelated(t *testing.T) {
	tr := loadStateful(t)
	web := tcpPacket("00:00:00:00:01:01", "00:00:00:00:01:02", "10.0.1.1", "10.0.1.2", 80)
	ssh := tcpPacket("00:00:00:00:01:01", "00:00:00:00:01:02", "10.0.1.1", "10.0.1.2", 22)

	d, err := tr.Decide("vm1", web)
	require.NoError(t, err)
	require.Empty(t, d.Errors)
	require.Empty(t, d.Unsupported)
	require.Equal(t, []string{"freeze ct_next zone=11"}, describe(d), "the ingress pipeline stops at ct_next in vm1's zone")
	require.NotNil(t, d.Freeze)
	require.Equal(t, ls1Ingress, d.Freeze.Frozen.Pipeline)
	require.False(t, d.Freeze.CT.Commit)
	ingress := d.Freeze

	// The pass after the ingress ct: a new connection is committed in
	// vm1's zone, then the egress pipeline stops at its own ct_next in
	// vm2's zone.
	tests := []struct {
		name  string
		state uint64
		want  []string
	}{
		{"new", newTrk, []string{"commit ct_commit zone=11 mark=0/1", "freeze ct_next zone=12"}},
		{"established", estTrk, []string{"freeze ct_next zone=12"}},
		{"invalid", invTrk, nil},
	}
	var egress *Freeze
	for _, tt := range tests {
		t.Run("ingress "+tt.name, func(t *testing.T) {
			d, err := tr.Resume(ingress.Frozen, withCT(ingress.Key, tt.state, 11))
			require.NoError(t, err)
			require.Empty(t, d.Errors)
			require.Empty(t, d.Unsupported)
			require.Equal(t, tt.want, describe(d))
			require.False(t, d.Mask.Get(field.CTState).IsZero(), "the decision reads ct_state")
			if d.Freeze != nil {
				require.Equal(t, ls1Egress, d.Freeze.Frozen.Pipeline)
				require.Equal(t, field.U64(12), d.Freeze.Frozen.State.Get(field.Reg(regLogCTZone)), "the egress pipeline has vm2's zone")
				if tt.state == newTrk {
					egress = d.Freeze
				}
			}
		})
	}
	require.NotNil(t, egress)

	// The pass after the egress ct: the ACL admits a new connection to
	// port 80 (committed in vm2's zone before the output), an
	// established one goes out, an invalid one is dropped.
	sshFreeze := func() *Freeze {
		d, err := tr.Decide("vm1", ssh)
		require.NoError(t, err)
		d, err = tr.Resume(d.Freeze.Frozen, withCT(d.Freeze.Key, newTrk, 11))
		require.NoError(t, err)
		require.NotNil(t, d.Freeze)
		return d.Freeze
	}()
	for _, tt := range []struct {
		name  string
		fz    *Freeze
		state uint64
		want  []string
	}{
		{"new to port 80", egress, newTrk, []string{"commit ct_commit zone=12 mark=0/1", "output vm2"}},
		{"established", egress, estTrk, []string{"output vm2"}},
		{"invalid", egress, invTrk, nil},
		{"new to port 22: the ACL drops it", sshFreeze, newTrk, nil},
	} {
		t.Run("egress "+tt.name, func(t *testing.T) {
			d, err := tr.Resume(tt.fz.Frozen, withCT(tt.fz.Key, tt.state, 12))
			require.NoError(t, err)
			require.Empty(t, d.Errors)
			require.Empty(t, d.Unsupported)
			require.Equal(t, tt.want, describe(d))
			for _, s := range d.Steps {
				if s.CT == nil {
					require.Equal(t, mac("00:00:00:00:01:02"), s.Key.Get(field.EthDst))
				}
			}
		})
	}
}

// Crossing a patch port clears the conntrack state and loads the peer
// datapath's zones: the gateway router's cts run in its DNAT zone
// (ct_dnat, ct_commit) and SNAT zone (ct_snat), and the far switch sees
// an untracked packet.
func TestDecidePatchPortZones(t *testing.T) {
	tr := loadStateful(t)
	pkt := tcpPacket("00:00:00:00:01:01", "00:00:00:00:01:fe", "10.0.1.1", "10.0.2.3", 80)
	d, err := tr.Decide("vm1", pkt)
	require.NoError(t, err)
	require.Equal(t, []string{"freeze ct_next zone=11"}, describe(d))

	// Established in vm1's zone: through the switch, across the patch
	// port into lr0, whose egress undnat stage runs ct_dnat in lr0's
	// DNAT zone on a packet whose conntrack state the crossing cleared.
	d, err = tr.Resume(d.Freeze.Frozen, withCT(d.Freeze.Key, estTrk, 11))
	require.NoError(t, err)
	require.Empty(t, d.Errors)
	require.Equal(t, []string{"freeze ct_dnat zone=21"}, describe(d))
	fz := d.Freeze
	require.Equal(t, lr0Egress, fz.Frozen.Pipeline)
	require.True(t, fz.Key.Get(field.CTState).IsZero(), "the patch port cleared ct_state")
	require.True(t, fz.Key.Get(field.CTZone).IsZero(), "the patch port cleared ct_zone")
	st := fz.Frozen.State
	require.Equal(t, field.U64(21), st.Get(field.Reg(regLogDNATZone)))
	require.Equal(t, field.U64(22), st.Get(field.Reg(regLogSNATZone)))
	require.True(t, st.Get(field.Reg(regLogCTZone)).IsZero(), "lrp1 has no zone of its own, and vm1's was cleared")
	require.Equal(t, ip4("10.0.2.3"), fz.Key.Get(field.IPv4Dst))
	require.Equal(t, field.U64(63), fz.Key.Get(field.IPTTL), "routed")

	// New in lr0's DNAT zone: committed there (a router's ct_commit uses
	// the DNAT zone), then SNATed in its SNAT zone.
	d, err = tr.Resume(fz.Frozen, withCT(fz.Key, newTrk, 21))
	require.NoError(t, err)
	require.Empty(t, d.Errors)
	require.Equal(t, []string{"commit ct_commit zone=21", "freeze ct_snat zone=22"}, describe(d))
	snat := d.Freeze
	require.True(t, snat.CT.Commit)
	require.Equal(t, ir.NATSrc, snat.CT.NAT.Kind)
	require.Equal(t, ip4("10.0.2.100"), snat.CT.NAT.Addr)

	// After the SNAT (the datapath rewrote the source): out of lr0,
	// across into ls2, which has no ACLs, out of vm3 untracked.
	k := withCT(snat.Key, newTrk|field.CSSrcNAT, 22)
	k.Set(field.IPv4Src, ip4("10.0.2.100"))
	d, err = tr.Resume(snat.Frozen, k)
	require.NoError(t, err)
	require.Empty(t, d.Errors)
	require.Equal(t, []string{"output vm3"}, describe(d))
	out := d.Steps[0].Key
	require.True(t, out.Get(field.CTState).IsZero(), "the patch port into ls2 cleared ct_state")
	require.Equal(t, mac("00:00:00:00:02:03"), out.Get(field.EthDst))
	require.Equal(t, ip4("10.0.2.100"), out.Get(field.IPv4Src))
}

// The soundness property across passes: packets that agree with a packet
// on its decision's mask get the same decision (steps, freeze, frozen
// state, zone) at pass 0 and when resumed.
func TestDecideMaskIsSufficient(t *testing.T) {
	tr := loadStateful(t)
	rng := rand.New(rand.NewPCG(8, 1))
	type seed struct {
		inport string
		pkt    field.Key
	}
	seeds := []seed{
		{"vm1", tcpPacket("00:00:00:00:01:01", "00:00:00:00:01:02", "10.0.1.1", "10.0.1.2", 80)},
		{"vm1", tcpPacket("00:00:00:00:01:01", "00:00:00:00:01:02", "10.0.1.1", "10.0.1.2", 22)},
		{"vm1", tcpPacket("00:00:00:00:01:01", "00:00:00:00:01:fe", "10.0.1.1", "10.0.2.3", 80)},
		{"vm2", tcpPacket("00:00:00:00:01:02", "00:00:00:00:01:01", "10.0.1.2", "10.0.1.1", 80)},
	}
	agree := func(k, mask field.Key) field.Key {
		var out field.Key
		for i := range out {
			out[i] = k[i]&mask[i] | byte(rng.UintN(256))&^mask[i]
		}
		return out
	}
	// Pass 0: the parser zeroes the conntrack fields, and the front end
	// starts with zero registers.
	pass0 := func(k field.Key) field.Key {
		field.ClearConntrack(&k)
		k.Set(field.Metadata, field.Value{})
		for i := 0; i < field.NumRegs; i++ {
			k.Set(field.Reg(i), field.Value{})
		}
		return k
	}
	checked := 0
	var walk func(want *Decision, again func(field.Key) *Decision, in field.Key, depth int)
	walk = func(want *Decision, again func(field.Key) *Decision, in field.Key, depth int) {
		for range 50 {
			other := agree(in, want.Mask)
			if depth == 0 {
				other = pass0(other)
			} else {
				// After a ct the datapath always reports trk.
				other.Set(field.CTState, field.U64(other.Get(field.CTState).Lo|field.CSTrk))
			}
			got := again(other)
			require.Equal(t, viewOf(in, want), viewOf(other, got))
			checked++
		}
		if want.Freeze == nil || depth == 3 {
			return
		}
		fz := want.Freeze
		for _, state := range []uint64{newTrk, estTrk, estTrk | field.CSRpl, invTrk} {
			k := withCT(fz.Key, state, fz.CT.Zone)
			resume := func(k field.Key) *Decision {
				d, err := tr.Resume(fz.Frozen, k)
				require.NoError(t, err)
				return d
			}
			walk(resume(k), resume, k, depth+1)
		}
	}
	for _, s := range seeds {
		decide := func(k field.Key) *Decision {
			d, err := tr.Decide(s.inport, k)
			require.NoError(t, err)
			return d
		}
		walk(decide(s.pkt), decide, s.pkt, 0)
	}
	require.Greater(t, checked, 1000)
}

// decisionView is a Decision with each key given as its difference from
// the packet that came in (registers and metadata left out: they are in
// Frozen), so decisions on different packets compare.
type decisionView struct {
	Steps       []stepView
	Freezes     []freezeView
	Errors      []string
	Unsupported string
}

type stepView struct {
	Port string
	CT   *CTCall
	Diff keyChange
}

type freezeView struct {
	CT     CTCall
	Frozen interp.Frozen
	Diff   keyChange
}

// keyChange is how a pipeline changed a packet: the bits of its headers it
// changed and whether it cleared the conntrack fields (ct_clear, a patch
// port). A clear is the same action whatever the fields held, so it is
// not a difference of bits.
type keyChange struct {
	Headers   field.Key
	CTCleared bool
}

func keyDiff(out, in field.Key) keyChange {
	var ch keyChange
	if out.Get(field.CTState).IsZero() && !in.Get(field.CTState).IsZero() {
		ch.CTCleared = true
		field.ClearConntrack(&out)
		field.ClearConntrack(&in)
	}
	for i := range out {
		out[i] ^= in[i]
	}
	out.Set(field.Metadata, field.Value{})
	for i := 0; i < field.NumRegs; i++ {
		out.Set(field.Reg(i), field.Value{})
	}
	ch.Headers = out
	return ch
}

func viewOf(in field.Key, d *Decision) decisionView {
	v := decisionView{Errors: d.Errors, Unsupported: d.Unsupported}
	for _, s := range d.Steps {
		v.Steps = append(v.Steps, stepView{Port: s.Port, CT: s.CT, Diff: keyDiff(s.Key, in)})
	}
	for _, f := range d.Freezes {
		v.Freezes = append(v.Freezes, freezeView{CT: f.CT, Frozen: f.Frozen, Diff: keyDiff(f.Key, in)})
	}
	return v
}

// Traces keep answering conntrack as ovn-trace does and load no zones;
// ProcessPacket still reports that conntrack was consulted.
func TestTraceModeUnchangedByZones(t *testing.T) {
	tr := loadStateful(t)
	pkt := tcpPacket("00:00:00:00:01:01", "00:00:00:00:01:02", "10.0.1.1", "10.0.1.2", 80)
	res, err := tr.ProcessPacket("vm1", pkt, RunOptions{})
	require.NoError(t, err)
	require.True(t, res.Conntrack)
	require.Len(t, res.Outputs, 1, "ovn-trace's default est|trk lets it through")
	require.True(t, res.Outputs[0].Key.Get(field.Reg(regLogCTZone)).IsZero(), "a trace loads no zones")
}

// OVN sends broadcasts past conntrack, so a flood freezes nowhere.
func TestDecideFloodSkipsConntrack(t *testing.T) {
	tr := loadStateful(t)
	pkt := tcpPacket("00:00:00:00:01:01", "ff:ff:ff:ff:ff:ff", "10.0.1.1", "10.0.1.255", 80)
	d, err := tr.Decide("vm1", pkt)
	require.NoError(t, err)
	require.Empty(t, d.Errors)
	require.Empty(t, d.Freezes)
	require.Equal(t, []string{"output vm2"}, describe(d))
}

// What one datapath action list cannot carry is marked unsupported:
// several freezes, live actions after a freeze on its path (a fork), a
// commit after the freeze. Outputs of other copies after it are fine.
func TestDecisionUnsupported(t *testing.T) {
	ct := &ir.CT{Recirc: true, Table: 3, Flavor: "ct_next"}
	commit := &interp.CTCall{CT: &ir.CT{Commit: true, Flavor: "ct_commit"}}
	fz := interp.Freeze{CT: interp.CTCall{CT: ct, Zone: 5}}
	out := interp.Step{Port: "vm2"}
	tests := []struct {
		name string
		res  interp.Result
		want string
	}{
		{"one freeze", interp.Result{Steps: []interp.Step{out}, Freezes: []interp.Freeze{{CT: fz.CT, Step: 1}}}, ""},
		{"an output after the freeze", interp.Result{Steps: []interp.Step{out}, Freezes: []interp.Freeze{fz}}, ""},
		{"two freezes", interp.Result{Freezes: []interp.Freeze{fz, fz}}, "recirculating conntrack actions"},
		{"a fork", interp.Result{Steps: []interp.Step{out}, Freezes: []interp.Freeze{fz}, Forked: true}, "ct fork"},
		{"a commit after the freeze", interp.Result{Steps: []interp.Step{{CT: commit}}, Freezes: []interp.Freeze{fz}}, "commit follows"},
		{"a commit before the freeze", interp.Result{Steps: []interp.Step{{CT: commit}}, Freezes: []interp.Freeze{{CT: fz.CT, Step: 1}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := decisionOf(&tt.res)
			if tt.want == "" {
				require.Empty(t, d.Unsupported)
				require.NotNil(t, d.Freeze)
				require.Equal(t, uint16(5), d.Freeze.CT.Zone)
				require.Equal(t, "ct_next", d.Freeze.CT.Flavor)
				return
			}
			require.Contains(t, d.Unsupported, tt.want)
			require.Len(t, d.Freezes, len(tt.res.Freezes), "every freeze is kept")
		})
	}
}

// Resume refuses a frozen state whose pipeline is gone.
func TestResumeUnknownPipeline(t *testing.T) {
	tr := loadStateful(t)
	_, err := tr.Resume(interp.Frozen{Pipeline: ir.PipelineID{Domain: 99}}, field.Key{})
	require.ErrorContains(t, err, "99/0")
}

// BenchmarkDecide is the slow path's cost for the two passes of a packet
// entering the allow-related switch: the pass that freezes at the ingress
// ct_next, and its resumption with an established connection, which
// freezes again at the egress ct_next; ProcessPacket (conntrack guessed) on
// the same packet for comparison.
func BenchmarkDecide(b *testing.B) {
	tr := loadStateful(b)
	pkt := tcpPacket("00:00:00:00:01:01", "00:00:00:00:01:02", "10.0.1.1", "10.0.1.2", 80)
	d, err := tr.Decide("vm1", pkt)
	require.NoError(b, err)
	fz := d.Freeze
	k := withCT(fz.Key, estTrk, 11)
	b.Run("pass0", func(b *testing.B) {
		for b.Loop() {
			if _, err := tr.Decide("vm1", pkt); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("resume", func(b *testing.B) {
		for b.Loop() {
			if _, err := tr.Resume(fz.Frozen, k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("process_packet", func(b *testing.B) {
		for b.Loop() {
			if _, err := tr.ProcessPacket("vm1", pkt, RunOptions{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
