package datapath

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/ct"
	"github.com/ovsbpf/ovsbpf/internal/testframe"
)

// The interfaces of the test ports. Run passes the ifindex as the packet's
// ingress; nothing is sent, so no such interfaces need to exist.
const (
	ifVM1 = 101
	ifVM2 = 102
	ifVM3 = 103
)

func openTest(t testing.TB, cfg Config) *Datapath {
	t.Helper()
	d, err := Open(cfg)
	require.NoError(t, err, "loading the datapath (needs root and eBPF)")
	t.Cleanup(func() { d.Close() })
	for _, p := range []Port{{No: 1, Ifindex: ifVM1, Name: "vm1"}, {No: 2, Ifindex: ifVM2, Name: "vm2", Peer: true}, {No: 3, Ifindex: ifVM3, Name: "vm3"}} {
		require.NoError(t, d.SetPort(p))
	}
	return d
}

type maskField func(m *Mask)

var (
	ones6      = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	mInPort    = func(m *Mask) { m.InPort = 0xffff }
	mRecirc    = func(m *Mask) { m.RecircId = 0xffffffff }
	mEthDst    = func(m *Mask) { m.EthDst = ones6 }
	mEthType   = func(m *Mask) { m.EthType = 0xffff }
	mVLAN      = func(m *Mask) { m.VlanTci = 0xffff }
	mNwProto   = func(m *Mask) { m.NwProto = 0xff }
	mNwDst24   = func(m *Mask) { m.SetIPv4Dst(netip.MustParseAddr("255.255.255.0")) }
	mL4Dst     = func(m *Mask) { m.TpDst = 0xffff }
	l2Switch   = []maskField{mInPort, mRecirc, mEthDst}
	ipv4Switch = []maskField{mInPort, mRecirc, mEthDst, mEthType}
)

func maskOf(fs ...maskField) Mask {
	var m Mask
	for _, f := range fs {
		f(&m)
	}
	return m
}

// keyFor is the key of the test frames from vm1 (only the fields masks
// here use).
func keyFor(inPort uint16) Key {
	var k Key
	k.InPort = inPort
	copy(k.EthDst[:], macVM2)
	copy(k.EthSrc[:], macVM1)
	k.SetEtherType(EthTypeIPv4)
	k.SetIPv4Dst(netip.MustParseAddr("10.0.0.2"))
	return k
}

func counters(t testing.TB, d *Datapath) Counters {
	t.Helper()
	c, err := d.Counters()
	require.NoError(t, err)
	return c
}

func run(t testing.TB, d *Datapath, frame []byte, ifindex uint32) RunResult {
	t.Helper()
	r, err := d.Run(frame, ifindex)
	require.NoError(t, err)
	return r
}

func TestCacheHitOutputsAndCounts(t *testing.T) {
	d := openTest(t, Config{})
	_, err := d.PutFlow(maskOf(l2Switch...), keyFor(1), []Action{Output(2)})
	require.NoError(t, err)

	f := tcpFrame(t, 10)
	for i := 0; i < 3; i++ {
		r := run(t, d, f, ifVM1)
		require.Equal(t, uint32(VerdictRedirect), r.Verdict)
		require.Equal(t, f, r.Frame, "an output-only flow leaves the frame alone")
	}
	c := counters(t, d)
	require.Equal(t, uint64(1), c.MaskHits, "the first packet is found by the tuple space search")
	require.Equal(t, uint64(2), c.EMCHits, "later ones by the exact-match cache")
	require.Zero(t, c.Misses)

	flows, err := d.Flows()
	require.NoError(t, err)
	require.Len(t, flows, 1)
	require.Equal(t, uint64(3), flows[0].Stats.Packets)
	require.Equal(t, uint64(3*len(f)), flows[0].Stats.Bytes)
	require.WithinDuration(t, time.Now(), flows[0].Stats.Used, 2*time.Second)
	require.Contains(t, flows[0].String(), "recirc_id(0),in_port(1),eth(dst=0a:00:00:00:00:02), packets:3, bytes:"+strconv.Itoa(3*len(f))+", used:")
	require.True(t, strings.HasSuffix(flows[0].String(), ", actions:2"), flows[0].String())

	// A packet from another port, or to another MAC, does not match.
	r := run(t, d, f, ifVM3)
	require.Equal(t, uint32(VerdictDrop), r.Verdict, "a miss drops: the slow path delivers")
	require.Equal(t, uint64(1), counters(t, d).Misses)
}

// A flow's last use is its own: a new flow has none, a changed one keeps
// it, and what a revalidator reads agrees with the full dump.
func TestLastUse(t *testing.T) {
	d := openTest(t, Config{})
	_, err := d.PutFlow(maskOf(l2Switch...), keyFor(1), []Action{Output(2)})
	require.NoError(t, err)
	other := keyFor(1)
	other.EthDst[5]++
	_, err = d.PutFlow(maskOf(l2Switch...), other, []Action{Output(3)})
	require.NoError(t, err)
	run(t, d, tcpFrame(t, 10), ifVM1)

	usedOf := func(fs []Flow, k Key) time.Time {
		for _, f := range fs {
			if f.Key == k.And(&f.Mask) {
				return f.Stats.Used
			}
		}
		t.Fatalf("no flow %s", FormatFlow(&k, &k))
		return time.Time{}
	}
	swept, err := d.AppendFlowsLastUsed(nil)
	require.NoError(t, err)
	require.Len(t, swept, 2)
	require.WithinDuration(t, time.Now(), usedOf(swept, keyFor(1)), 2*time.Second)
	require.True(t, usedOf(swept, other).IsZero(), "no packet hit the other flow")
	for _, f := range swept {
		require.Zero(t, f.Stats.Packets, "the sweep reads no counters")
	}

	// Changing the hit flow's actions keeps its counts and last use.
	_, err = d.PutFlow(maskOf(l2Switch...), keyFor(1), []Action{Output(3)})
	require.NoError(t, err)
	dump, err := d.Flows()
	require.NoError(t, err)
	require.Equal(t, usedOf(swept, keyFor(1)).Round(time.Second), usedOf(dump, keyFor(1)).Round(time.Second))
	for _, f := range dump {
		if f.Key == keyFor(1).And(&f.Mask) {
			require.Equal(t, uint64(1), f.Stats.Packets)
		}
	}
}

func TestRewritesKeepChecksumsValid(t *testing.T) {
	newMAC := [6]byte{0x0a, 0, 0, 0, 0, 0x99}
	nat := netip.MustParseAddr("192.168.7.9")
	tests := []struct {
		name    string
		frame   []byte
		actions []Action
		check   func(t *testing.T, out []byte)
	}{
		{"set eth src and dst", tcpFrame(t, 0), []Action{SetEthSrc(newMAC), SetEthDst(newMAC), Output(2)}, func(t *testing.T, out []byte) {
			require.Equal(t, newMAC[:], out[0:6])
			require.Equal(t, newMAC[:], out[6:12])
		}},
		{"snat tcp", tcpFrame(t, 33), []Action{SetIPv4Src(nat), Output(2)}, func(t *testing.T, out []byte) {
			require.Equal(t, nat.AsSlice(), out[26:30])
		}},
		{"dnat tcp with port", tcpFrame(t, 33), []Action{SetIPv4Dst(nat), SetL4Dst(8080), Output(2)}, func(t *testing.T, out []byte) {
			require.Equal(t, nat.AsSlice(), out[30:34])
			require.Equal(t, uint16(8080), binary.BigEndian.Uint16(out[36:]))
		}},
		{"dnat udp with port", udpFrame(t, 17), []Action{SetIPv4Dst(nat), SetL4Dst(5353), SetL4Src(1), Output(2)}, func(t *testing.T, out []byte) {
			require.Equal(t, nat.AsSlice(), out[30:34])
			require.Equal(t, uint16(1), binary.BigEndian.Uint16(out[34:]))
			require.Equal(t, uint16(5353), binary.BigEndian.Uint16(out[36:]))
		}},
		{"snat udp without checksum", zeroUDPChecksum(udpFrame(t, 8)), []Action{SetIPv4Src(nat), Output(2)}, func(t *testing.T, out []byte) {
			require.Equal(t, nat.AsSlice(), out[26:30])
			require.Zero(t, binary.BigEndian.Uint16(out[40:]), "a UDP checksum of 0 (none) stays 0")
		}},
		{"snat icmp", icmpFrame(t), []Action{SetIPv4Src(nat), Output(2)}, func(t *testing.T, out []byte) {
			require.Equal(t, nat.AsSlice(), out[26:30])
		}},
		{"dec_ttl ipv4", tcpFrame(t, 5), []Action{DecTTL(), Output(2)}, func(t *testing.T, out []byte) {
			require.Equal(t, byte(63), out[22])
		}},
		{"dec_ttl ipv6", udp6Frame(t), []Action{DecTTL(), Output(2)}, func(t *testing.T, out []byte) {
			require.Equal(t, byte(63), out[21])
		}},
		{"router hop", udpFrame(t, 40), []Action{SetEthSrc(newMAC), SetEthDst([6]byte(macVM1)), DecTTL(), Output(3)}, func(t *testing.T, out []byte) {
			require.Equal(t, byte(63), out[22])
			require.Equal(t, []byte(macVM1), out[0:6])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := openTest(t, Config{})
			_, err := d.PutFlow(maskOf(mInPort), Key{InPort: 1}, tc.actions)
			require.NoError(t, err)
			requireValidChecksums(t, tc.frame)
			r := run(t, d, tc.frame, ifVM1)
			require.Equal(t, uint32(VerdictRedirect), r.Verdict)
			require.Len(t, r.Frame, len(tc.frame))
			tc.check(t, r.Frame)
			requireValidChecksums(t, r.Frame)
			require.Zero(t, counters(t, d).ActionErrors)
		})
	}
}

func zeroUDPChecksum(f []byte) []byte {
	binary.BigEndian.PutUint16(f[40:], 0)
	return f
}

func TestFailedActionDropsNeverForwards(t *testing.T) {
	tests := []struct {
		name    string
		frame   []byte
		actions []Action
	}{
		{"output to a port with no interface", tcpFrame(t, 0), []Action{Output(9)}},
		{"set port on icmp", icmpFrame(t), []Action{SetL4Dst(1), Output(2)}},
		{"set ipv4 on ipv6", udp6Frame(t), []Action{SetIPv4Dst(netip.MustParseAddr("1.2.3.4")), Output(2)}},
		{"dec_ttl on arp", arpRequest(t), []Action{DecTTL(), Output(2)}},
		{"output after a failed rewrite", icmpFrame(t), []Action{Output(2), SetL4Src(7), Output(3)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := openTest(t, Config{})
			_, err := d.PutFlow(maskOf(mInPort), Key{InPort: 1}, tc.actions)
			require.NoError(t, err)
			r := run(t, d, tc.frame, ifVM1)
			require.Equal(t, uint32(VerdictDrop), r.Verdict)
			require.Equal(t, uint64(1), counters(t, d).ActionErrors)
		})
	}
}

func TestTTLExpiryGoesToUserSpace(t *testing.T) {
	d := openTest(t, Config{})
	rd := upcallReader(t, d)
	_, err := d.PutFlow(maskOf(mInPort), Key{InPort: 1}, []Action{DecTTL(), Output(2)})
	require.NoError(t, err)
	f := udpFrame(t, 4)
	f[22] = 1 // TTL 1; the checksum no longer matters here
	r := run(t, d, f, ifVM1)
	require.Equal(t, uint32(VerdictDrop), r.Verdict)
	u := readUpcall(t, rd)
	require.Equal(t, UpcallTTL, u.Reason)
	require.Equal(t, f, u.Frame, "the frame as it arrived")
}

func upcallReader(t testing.TB, d *Datapath) *ringbuf.Reader {
	t.Helper()
	rd, err := ringbuf.NewReader(d.UpcallMap())
	require.NoError(t, err)
	t.Cleanup(func() { rd.Close() })
	return rd
}

func readUpcall(t testing.TB, rd *ringbuf.Reader) Upcall {
	t.Helper()
	rd.SetDeadline(time.Now().Add(2 * time.Second))
	rec, err := rd.Read()
	require.NoError(t, err, "reading an upcall")
	u, err := ParseUpcall(rec.RawSample)
	require.NoError(t, err)
	return u
}

func TestMissUpcallsKeyAndWholeFrame(t *testing.T) {
	d := openTest(t, Config{})
	rd := upcallReader(t, d)
	for _, f := range [][]byte{tcpFrame(t, 0), tcpFrame(t, 1460), arpRequest(t), udp6Frame(t)} {
		before := MonotonicNow()
		r := run(t, d, f, ifVM2)
		after := MonotonicNow()
		require.Equal(t, uint32(VerdictDrop), r.Verdict)
		u := readUpcall(t, rd)
		require.Equal(t, UpcallMiss, u.Reason)
		// The handler's latency figures subtract the datapath's stamp
		// from MonotonicNow: the two must be one clock.
		require.True(t, before <= u.Time && u.Time <= after, "upcall stamped %d, not within [%d, %d]", u.Time, before, after)
		require.Equal(t, uint32(ifVM2), u.Ifindex)
		require.Equal(t, uint16(2), u.Key.N.InPort)
		require.Equal(t, uint32(len(f)), u.FrameLen)
		require.Equal(t, f, u.Frame, "the whole frame, up to the MTU")
		k := u.Key.Narrow()
		switch k.EtherType() {
		case EthTypeIPv4:
			require.Equal(t, netip.MustParseAddr("10.0.0.2"), k.IPv4Dst())
			require.Equal(t, uint16(80), k.L4Dst())
		case EthTypeARP:
			require.Equal(t, uint8(1), k.NwProto)
			require.Equal(t, []byte(macVM1), []byte(k.ARPSHA()))
		case EthTypeIPv6:
			require.Equal(t, netip.MustParseAddr("fd00::2"), u.Key.IPv6Dst())
		default:
			t.Fatalf("unexpected ethertype %#x", k.EtherType())
		}
	}
	require.Equal(t, uint64(4), counters(t, d).Misses)
}

func TestFullUpcallRingIsCounted(t *testing.T) {
	d := openTest(t, Config{UpcallRingBytes: uint32(os.Getpagesize())})
	rd := upcallReader(t, d)
	f := tcpFrame(t, 1460)
	const sent = 6
	for i := 0; i < sent; i++ {
		require.Equal(t, uint32(VerdictDrop), run(t, d, f, ifVM1).Verdict)
	}
	c := counters(t, d)
	require.Equal(t, uint64(sent), c.Misses)
	require.NotZero(t, c.UpcallsLost, "a one-page ring holds at most two full frames")
	got := 0
	for {
		rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
		_, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			break
		}
		require.NoError(t, err)
		got++
	}
	require.Equal(t, uint64(sent), uint64(got)+c.UpcallsLost, "every miss is read or counted as lost")
}

func TestTupleSpaceSearch(t *testing.T) {
	d := openTest(t, Config{DisableEMC: true})
	// Three masks: L2 on port 1, an IPv4 /24 route on port 2, and
	// port 3's UDP port 53.
	key2 := keyFor(2)
	key3 := keyFor(3)
	key3.NwProto = 17
	key3.SetL4Dst(53)
	_, err := d.PutFlow(maskOf(l2Switch...), keyFor(1), []Action{Output(2)})
	require.NoError(t, err)
	_, err = d.PutFlow(maskOf(mInPort, mRecirc, mEthType, mNwDst24), key2, []Action{Output(3)})
	require.NoError(t, err)
	_, err = d.PutFlow(maskOf(mInPort, mRecirc, mEthType, mNwProto, mL4Dst), key3, []Action{Output(1)})
	require.NoError(t, err)
	require.Equal(t, 3, d.MaskCount())

	other := func(f []byte, dst byte) []byte { g := append([]byte(nil), f...); g[33] = dst; return g }
	tests := []struct {
		name    string
		frame   []byte
		ifindex uint32
		verdict uint32
	}{
		{"l2 hit", tcpFrame(t, 0), ifVM1, VerdictRedirect},
		{"l2 hit ignores ip", other(tcpFrame(t, 0), 77), ifVM1, VerdictRedirect},
		{"/24 hit", tcpFrame(t, 0), ifVM2, VerdictRedirect},
		{"/24 hit, other host", other(tcpFrame(t, 0), 200), ifVM2, VerdictRedirect},
		{"udp 53 hit", udpFrame(t, 0), ifVM3, VerdictRedirect},
		{"tcp from port 3 misses", tcpFrame(t, 0), ifVM3, VerdictDrop},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.verdict, run(t, d, tc.frame, tc.ifindex).Verdict)
		})
	}

	// Deleting the middle mask's only flow frees its slot; the search
	// skips it and still finds the flow in the slot after it.
	require.NoError(t, d.DeleteFlow(maskOf(mInPort, mRecirc, mEthType, mNwDst24), key2))
	require.Equal(t, 2, d.MaskCount())
	require.Equal(t, uint32(VerdictDrop), run(t, d, tcpFrame(t, 0), ifVM2).Verdict)
	require.Equal(t, uint32(VerdictRedirect), run(t, d, udpFrame(t, 0), ifVM3).Verdict)
	require.ErrorIs(t, d.DeleteFlow(maskOf(mInPort, mRecirc, mEthType, mNwDst24), key2), ErrNoFlow)
}

// The search tries first the masks with the most hits since the last
// reorder: the busiest flow costs one probe, not one per mask before it.
func TestTupleSpaceSearchTriesTheBusiestMaskFirst(t *testing.T) {
	d := openTest(t, Config{DisableEMC: true})
	key3 := keyFor(3)
	key3.NwProto = 17
	key3.SetL4Dst(53)
	for _, f := range []struct {
		mask Mask
		key  Key
	}{
		{maskOf(l2Switch...), keyFor(1)},
		{maskOf(mInPort, mRecirc, mEthType, mNwDst24), keyFor(2)},
		{maskOf(mInPort, mRecirc, mEthType, mNwProto, mL4Dst), key3},
	} {
		_, err := d.PutFlow(f.mask, f.key, []Action{Output(2)})
		require.NoError(t, err)
	}
	probes := func(frame []byte, ifindex uint32, n int) uint64 {
		before := counters(t, d).MaskProbes
		for range n {
			require.Equal(t, uint32(VerdictRedirect), run(t, d, frame, ifindex).Verdict)
		}
		return counters(t, d).MaskProbes - before
	}
	udp, tcp := udpFrame(t, 0), tcpFrame(t, 0)
	require.Equal(t, uint64(30), probes(udp, ifVM3, 10), "the newest mask is tried last")
	require.NoError(t, d.ReorderMasks())
	require.Equal(t, uint64(10), probes(udp, ifVM3, 10), "after a reorder, first")
	require.Equal(t, uint64(20), probes(tcp, ifVM1, 10), "the L2 mask, second now")

	// The L2 flow is busier since the last reorder: it goes first.
	probes(tcp, ifVM1, 10)
	require.NoError(t, d.ReorderMasks())
	require.Equal(t, uint64(10), probes(tcp, ifVM1, 10))
	require.Equal(t, uint64(20), probes(udp, ifVM3, 10))

	// A freed slot leaves the search; a new mask in it starts last.
	require.NoError(t, d.DeleteFlow(maskOf(l2Switch...), keyFor(1)))
	require.Equal(t, uint64(10), probes(udp, ifVM3, 10))
	_, err := d.PutFlow(maskOf(l2Switch...), keyFor(1), []Action{Output(2)})
	require.NoError(t, err)
	require.Equal(t, uint64(30), probes(tcp, ifVM1, 10))
}

func TestChangedOrDeletedFlowTakesEffectDespiteEMC(t *testing.T) {
	d := openTest(t, Config{})
	mask, key := maskOf(l2Switch...), keyFor(1)
	f := tcpFrame(t, 0)
	macX, macY := [6]byte{2, 0, 0, 0, 0, 0xaa}, [6]byte{2, 0, 0, 0, 0, 0xbb}

	created, err := d.PutFlow(mask, key, []Action{SetEthSrc(macX), Output(2)})
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, macX[:], run(t, d, f, ifVM1).Frame[6:12])
	require.Equal(t, macX[:], run(t, d, f, ifVM1).Frame[6:12])
	require.Equal(t, uint64(1), counters(t, d).EMCHits)

	created, err = d.PutFlow(mask, key, []Action{SetEthSrc(macY), Output(2)})
	require.NoError(t, err)
	require.False(t, created, "same megaflow, new actions")
	require.Equal(t, macY[:], run(t, d, f, ifVM1).Frame[6:12], "the cached entry for the old actions is stale")

	flows, err := d.Flows()
	require.NoError(t, err)
	require.Equal(t, uint64(3), flows[0].Stats.Packets, "statistics carry over a change of actions")

	require.NoError(t, d.DeleteFlow(mask, key))
	require.Equal(t, uint32(VerdictDrop), run(t, d, f, ifVM1).Verdict)
	require.Equal(t, uint64(1), counters(t, d).Misses)
	require.Zero(t, d.FlowCount())
	require.Zero(t, d.MaskCount())
}

func TestRecirculation(t *testing.T) {
	d := openTest(t, Config{})
	macX := [6]byte{2, 0, 0, 0, 0, 0xaa}
	_, err := d.PutFlow(maskOf(mInPort, mRecirc), Key{InPort: 1}, []Action{SetEthDst(macX), Recirc(5)})
	require.NoError(t, err)
	_, err = d.PutFlow(maskOf(mInPort, mRecirc, mEthDst), Key{InPort: 1, RecircId: 5, EthDst: macX}, []Action{Output(2)})
	require.NoError(t, err)
	r := run(t, d, tcpFrame(t, 0), ifVM1)
	require.Equal(t, uint32(VerdictRedirect), r.Verdict, "the second pass sees the rewritten eth_dst")
	require.Equal(t, macX[:], r.Frame[0:6])

	// A loop is cut off and counted.
	_, err = d.PutFlow(maskOf(mInPort, mRecirc), Key{InPort: 3}, []Action{Recirc(7)})
	require.NoError(t, err)
	_, err = d.PutFlow(maskOf(mInPort, mRecirc), Key{InPort: 3, RecircId: 7}, []Action{Recirc(7)})
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictDrop), run(t, d, tcpFrame(t, 0), ifVM3).Verdict)
	require.Equal(t, uint64(1), counters(t, d).RecircLimit)

	// A miss after recirculation carries the recirc_id to user space.
	rd := upcallReader(t, d)
	_, err = d.PutFlow(maskOf(mInPort, mRecirc), Key{InPort: 2}, []Action{Recirc(9)})
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictDrop), run(t, d, tcpFrame(t, 0), ifVM2).Verdict)
	u := readUpcall(t, rd)
	require.Equal(t, UpcallMiss, u.Reason)
	require.Equal(t, uint32(9), u.Key.N.RecircId)
}

func TestVLANPushPop(t *testing.T) {
	d := openTest(t, Config{})
	// Pop a tag that is in the frame, then rewrite the IPv4 destination:
	// the rewrite must find the IPv4 header where it moved to.
	tagged := serialize(t, ethLayer(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 10, Type: layers.EthernetTypeIPv4},
		ipv4Layer(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2}, gopacket.Payload(fill(12)))
	nat := netip.MustParseAddr("10.9.9.9")
	_, err := d.PutFlow(maskOf(mInPort, mVLAN), keyWithVLAN(1, 10), []Action{PopVLAN(), SetIPv4Dst(nat), Output(2)})
	require.NoError(t, err)
	r := run(t, d, tagged, ifVM1)
	require.Equal(t, uint32(VerdictRedirect), r.Verdict)
	require.Len(t, r.Frame, len(tagged)-4)
	require.Equal(t, []byte{0x08, 0x00}, r.Frame[12:14])
	require.Equal(t, nat.AsSlice(), r.Frame[30:34])
	requireValidChecksums(t, r.Frame)

	// A pushed tag goes into skb metadata, not the frame; the second
	// pass's key must show it.
	_, err = d.PutFlow(maskOf(mInPort, mRecirc), Key{InPort: 3}, []Action{PushVLAN(20), Recirc(1)})
	require.NoError(t, err)
	_, err = d.PutFlow(maskOf(mInPort, mRecirc, mVLAN), keyWithVLAN(3, 20, 1), []Action{Output(1)})
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictRedirect), run(t, d, tcpFrame(t, 0), ifVM3).Verdict)
}

func keyWithVLAN(inPort, vid uint16, recirc ...uint32) Key {
	k := Key{InPort: inPort}
	k.SetVLAN(VLANPresent | vid)
	if len(recirc) > 0 {
		k.RecircId = recirc[0]
	}
	return k
}

func TestMalformedFramesAreDroppedNotForwarded(t *testing.T) {
	d := openTest(t, Config{})
	// A flow that would forward anything from port 1.
	_, err := d.PutFlow(maskOf(mInPort), Key{InPort: 1}, []Action{Output(2)})
	require.NoError(t, err)
	good := tcpFrame(t, 0)
	badIHL := append([]byte(nil), good...)
	badIHL[14] = 0x44 // IHL 4
	shortTCP := append([]byte(nil), good[:40]...)
	binary.BigEndian.PutUint16(shortTCP[16:], 26) // IPv4 total length: 6 bytes of TCP
	tests := []struct {
		name   string
		frame  []byte
		reason string
	}{
		{"ipv4 longer than the frame", good[:40], "short_ipv4"},
		{"bad ihl", badIHL, "bad_ipv4"},
		{"short tcp", shortTCP, "short_l4"},
		{"stacked vlan", serialize(t, ethLayer(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 1, Type: layers.EthernetTypeDot1Q},
			&layers.Dot1Q{VLANIdentifier: 2, Type: layers.EthernetTypeIPv4}, ipv4Layer(layers.IPProtocolTCP), &layers.TCP{}), "stacked_vlan"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := counters(t, d).Drops[tc.reason]
			require.Equal(t, uint32(VerdictDrop), run(t, d, tc.frame, ifVM1).Verdict)
			require.Equal(t, before+1, counters(t, d).Drops[tc.reason])
		})
	}
}

func TestUnknownInterfaceIsLeftToTheKernel(t *testing.T) {
	d := openTest(t, Config{})
	require.Equal(t, uint32(VerdictPass), run(t, d, tcpFrame(t, 0), 999).Verdict)
	require.Equal(t, uint64(1), counters(t, d).UnknownPort)
}

func TestFlowLimitsAreErrors(t *testing.T) {
	d := openTest(t, Config{})
	for i := range int(MaxMasks) {
		var m Mask
		m.InPort = 0xffff
		m.NwTtl = uint8(i + 1)
		_, err := d.PutFlow(m, Key{InPort: 1}, []Action{Output(2)})
		require.NoError(t, err)
	}
	var m Mask
	m.CtMark = 1
	_, err := d.PutFlow(m, Key{}, nil)
	require.ErrorIs(t, err, ErrTooManyMasks)
	m = Mask{InPort: 0xffff, NwTtl: 1}
	_, err = d.PutFlow(m, Key{InPort: 2}, make([]Action, MaxActions+1))
	require.ErrorIs(t, err, ErrTooManyActions)
}

func TestARPResponderRewrite(t *testing.T) {
	d := openTest(t, Config{})
	// What OVN's ARP responder does to a request for 10.0.0.2 from vm1:
	// a reply from vm2's MAC, back out of the port it came in on.
	req := arpRequest(t)
	reply := append([]byte(nil), req...)
	copy(reply[0:6], macVM1)
	copy(reply[6:12], macVM2)
	arp := reply[14:]
	arp[7] = 2               // op: reply
	copy(arp[8:14], macVM2)  // sha
	copy(arp[14:18], ipVM2)  // spa
	copy(arp[18:24], macVM1) // tha
	copy(arp[24:28], ipVM1)  // tpa
	actions := []Action{SetEthDst([6]byte(macVM1)), SetEthSrc([6]byte(macVM2))}
	for off := 6; off < ARPHeaderLen; off += 8 {
		end := min(off+8, ARPHeaderLen)
		a, err := SetARP(off, arp[off:end])
		require.NoError(t, err)
		actions = append(actions, a)
	}
	actions = append(actions, Output(1))
	arpKey := Key{InPort: 1}
	arpKey.SetEtherType(EthTypeARP)
	_, err := d.PutFlow(maskOf(mInPort, mEthType), arpKey, actions)
	require.NoError(t, err)
	r := run(t, d, req, ifVM1)
	require.Equal(t, uint32(VerdictRedirect), r.Verdict)
	require.Equal(t, reply, r.Frame)

	_, err = SetARP(24, make([]byte, 5))
	require.Error(t, err, "past the end of the header")
	// On anything but ARP the rewrite fails and the packet is dropped.
	_, err = d.PutFlow(maskOf(mInPort, mEthType), keyFor(1), actions)
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictDrop), run(t, d, tcpFrame(t, 0), ifVM1).Verdict)
	require.Equal(t, uint64(1), counters(t, d).ActionErrors)
}

// FuzzIngress feeds random frames to the loaded fast path through
// BPF_PROG_TEST_RUN, with megaflows that forward, rewrite and drop. Every
// frame must come out forwarded unchanged in length, rewritten as the
// flow says, or dropped; never anything else, and never an error.
func FuzzIngress(f *testing.F) {
	d := openTest(f, Config{})
	nat := netip.MustParseAddr("192.0.2.1")
	for _, fl := range []struct {
		mask    Mask
		key     Key
		actions []Action
	}{
		{maskOf(mInPort), Key{InPort: 1}, []Action{Output(2)}},
		{maskOf(mInPort), Key{InPort: 2}, []Action{SetIPv4Dst(nat), SetL4Dst(8080), DecTTL(), Output(1)}},
		{maskOf(mInPort), Key{InPort: 3}, []Action{PopVLAN(), SetEthSrc([6]byte{2}), Output(1), Output(2)}},
	} {
		_, err := d.PutFlow(fl.mask, fl.key, fl.actions)
		require.NoError(f, err)
	}
	for _, seed := range [][]byte{tcpFrame(f, 10), udpFrame(f, 3), icmpFrame(f), udp6Frame(f), arpRequest(f)} {
		f.Add(seed, uint8(0))
		f.Add(seed, uint8(1))
		f.Add(seed, uint8(2))
	}
	f.Fuzz(func(t *testing.T, frame []byte, port uint8) {
		if len(frame) < 14 || len(frame) > 1514 {
			return // BPF_PROG_TEST_RUN refuses these
		}
		r, err := d.Run(frame, uint32(ifVM1+int(port%3)))
		if err != nil {
			if testframe.RefusedByTestRun(frame) {
				return
			}
			t.Fatalf("test run: %v", err)
		}
		switch r.Verdict {
		case VerdictDrop:
		case VerdictRedirect:
			if port%3 != 2 && len(r.Frame) != len(frame) {
				t.Fatalf("forwarded frame changed length %d -> %d", len(frame), len(r.Frame))
			}
		default:
			t.Fatalf("verdict %d", r.Verdict)
		}
	})
}

// The userspace action sends a copy up and goes on; ct, until eBPF
// conntrack exists, sends the packet up instead of forwarding it on
// guessed connection state.
func TestUserspaceAndCTHooks(t *testing.T) {
	d := openTest(t, Config{})
	rd := upcallReader(t, d)
	_, err := d.PutFlow(maskOf(mInPort), Key{InPort: 1}, []Action{Userspace(), Output(2)})
	require.NoError(t, err)
	_, err = d.PutFlow(maskOf(mInPort), Key{InPort: 2}, []Action{CT(70000), Recirc(1)})
	require.NoError(t, err)
	flows, err := d.Flows()
	require.NoError(t, err)
	require.Len(t, flows, 2)
	var ctFlow Flow
	for _, f := range flows {
		if f.Key.InPort == 2 {
			ctFlow = f
		}
	}
	require.Equal(t, []Action{CT(70000), Recirc(1)}, ctFlow.Actions, "a params index past 16 bits reads back whole")
	require.Equal(t, "ct(params=70000),recirc(0x1)", FormatActions(ctFlow.Actions))

	f := udpFrame(t, 8)
	require.Equal(t, uint32(VerdictRedirect), run(t, d, f, ifVM1).Verdict, "userspace copies, the packet goes on")
	u := readUpcall(t, rd)
	require.Equal(t, UpcallAction, u.Reason)
	require.Equal(t, f, u.Frame)

	// ct_params 70000 is past the table: the action fails, nothing
	// leaves and nothing comes up.
	before, err := d.Counters()
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictDrop), run(t, d, f, ifVM2).Verdict)
	after, err := d.Counters()
	require.NoError(t, err)
	require.Equal(t, before.ActionErrors+1, after.ActionErrors)

	// With parameters in place the tracker fills the key, and the
	// lookup after the recirculation misses with them.
	require.NoError(t, d.SetCTParams(5, ct.Params{Zone: 3}))
	require.NoError(t, d.DeleteFlow(maskOf(mInPort), Key{InPort: 2}))
	_, err = d.PutFlow(maskOf(mInPort, mRecirc), Key{InPort: 2}, []Action{CT(5), Recirc(1)})
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictDrop), run(t, d, f, ifVM2).Verdict)
	after2, err := d.Counters()
	require.NoError(t, err)
	require.Equal(t, after.ActionErrors, after2.ActionErrors, "%+v", after2)
	u = readUpcall(t, rd)
	require.Equal(t, UpcallMiss, u.Reason)
	require.Equal(t, uint32(1), u.Key.N.RecircId)
	require.Equal(t, ct.StateNew|ct.StateTrk, u.Key.N.CtState, "a first packet without commit is new, and nothing is stored")
	require.Equal(t, uint16(3), u.Key.N.CtZone)
	require.Zero(t, d.Conntrack().NConns())
	require.Equal(t, "ct(params=5),recirc(0x1)", FormatActions([]Action{CT(5), Recirc(1)}))
	require.Equal(t, "ct(params=4294967295),recirc(0x12345678)", FormatActions([]Action{CT(0xffffffff), Recirc(0x12345678)}))
}
