package ct_test

import (
	"net"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/bpf/testprogs"
	"github.com/ovsbpf/ovsbpf/ct"
	"github.com/ovsbpf/ovsbpf/internal/testframe"
)

// ct_state values the tests expect.
const (
	trk       = ct.StateTrk
	newTrk    = ct.StateNew | ct.StateTrk
	estTrk    = ct.StateEst | ct.StateTrk
	estRplTrk = ct.StateEst | ct.StateRpl | ct.StateTrk
	invTrk    = ct.StateInv | ct.StateTrk
)

// skbContext is the head of struct __sk_buff that BPF_PROG_TEST_RUN
// accepts; cb[0] carries the params index to test_ct.
type skbContext struct {
	_              [9]uint32
	IngressIfindex uint32
	Ifindex        uint32
	TCIndex        uint32
	CB             [5]uint32
}

func (c skbContext) MarshalBinary() ([]byte, error) {
	return unsafe.Slice((*byte)(unsafe.Pointer(&c)), unsafe.Sizeof(c)), nil
}

// tracker is test_ct loaded with fresh maps, and a Table over them.
type tracker struct {
	objs testprogs.TestCtObjects
	tab  *ct.Table
}

// loadTracker loads test_ct; capacity 0 keeps the compiled-in one.
func loadTracker(t *testing.T, capacity uint32) *tracker {
	t.Helper()
	spec, err := testprogs.LoadTestCt()
	require.NoError(t, err)
	if capacity != 0 {
		spec.Maps["ct_conns4"].MaxEntries = capacity
		spec.Maps["ct_free4"].MaxEntries = capacity
		spec.Maps["ct_index4"].MaxEntries = 2 * capacity
	}
	tr := &tracker{}
	require.NoError(t, spec.LoadAndAssign(&tr.objs, nil), "loading test_ct (needs root and eBPF)")
	t.Cleanup(func() { tr.objs.Close() })
	tr.tab, err = ct.NewTable(ct.Maps{
		Index: tr.objs.CtIndex4, Conns: tr.objs.CtConns4, Free: tr.objs.CtFree4, Params: tr.objs.CtParams,
		Timeouts: tr.objs.CtTimeouts, Config: tr.objs.CtConfig, Alloc: tr.objs.CtAlloc, Counters: tr.objs.CtCounters,
	})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, tr.tab.Close()) })
	return tr
}

// The params slots the tests use.
const (
	pZone5       = 0 // zone 5, no commit
	pZone5Commit = 1
	pZone6       = 2
	pZone6Commit = 3
	pMarkLabel   = 4 // zone 5, commit, mark 0x1/0x1 and label bit 0x80.. set
	pForce       = 5 // zone 5, commit, force
	pZone0Commit = 6
)

func (tr *tracker) setParams(t *testing.T) {
	t.Helper()
	var label, mask [16]byte
	label[15], mask[15] = 0x01, 0x01
	label[0], mask[0] = 0x80, 0x80
	for i, p := range []ct.Params{
		{Zone: 5},
		{Zone: 5, Commit: true},
		{Zone: 6},
		{Zone: 6, Commit: true},
		{Zone: 5, Commit: true, SetMark: true, Mark: 0x1, MarkMask: 0x1, SetLabel: true, Label: label, LabelMask: mask},
		{Zone: 5, Commit: true, Force: true},
		{Zone: 0, Commit: true},
	} {
		require.NoError(t, tr.tab.SetParams(uint32(i), p))
	}
}

// result is what test_ct stored for the last frame.
type result = testprogs.TestCtCtTestResult

func (tr *tracker) run(t *testing.T, params uint32, frame []byte) result {
	t.Helper()
	ret, err := tr.objs.TestCt.Run(&ebpf.RunOptions{Data: frame, Context: skbContext{CB: [5]uint32{params}}})
	require.NoError(t, err)
	require.Equal(t, uint32(0), ret, "test_ct refused the frame")
	var r result
	require.NoError(t, tr.objs.CtResult.Lookup(uint32(0), &r))
	require.Zero(t, r.Ret, "ovsbpf_ct returned an error")
	return r
}

var (
	macA = net.HardwareAddr{0, 0, 0, 0, 0, 1}
	macB = net.HardwareAddr{0, 0, 0, 0, 0, 2}
	ipA  = net.IPv4(10, 0, 0, 1).To4()
	ipB  = net.IPv4(10, 0, 0, 2).To4()
)

// dir says which way a packet goes: fwd from A (the client), rev from B.
type dir bool

const (
	fwd dir = false
	rev dir = true
)

func ip4(d dir, proto layers.IPProtocol) (*layers.Ethernet, *layers.IPv4) {
	src, dst, smac, dmac := ipA, ipB, macA, macB
	if d == rev {
		src, dst, smac, dmac = ipB, ipA, macB, macA
	}
	return &layers.Ethernet{SrcMAC: smac, DstMAC: dmac, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: src, DstIP: dst}
}

func udp(t *testing.T, d dir, sport, dport uint16) []byte {
	eth, ip := ip4(d, layers.IPProtocolUDP)
	if d == rev {
		sport, dport = dport, sport
	}
	return testframe.Serialize(t, eth, ip, &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)},
		gopacket.Payload("hello"))
}

func icmp(t *testing.T, d dir, typ uint8, id uint16) []byte {
	eth, ip := ip4(d, layers.IPProtocolICMPv4)
	return testframe.Serialize(t, eth, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: id, Seq: 1},
		gopacket.Payload("ping"))
}

// seg describes a TCP segment from client A:1234 to server B:80 (fwd) or
// back (rev).
type seg struct {
	d        dir
	flags    string // any of S A F R P U, e.g. "SA"
	seq, ack uint32
	win      uint16
	data     int   // payload bytes
	withWS   bool  // carry a window scale option (SYNs)
	ws       uint8 // its shift
}

func tcp(t *testing.T, s seg) []byte {
	eth, ip := ip4(s.d, layers.IPProtocolTCP)
	th := &layers.TCP{SrcPort: 1234, DstPort: 80, Seq: s.seq, Ack: s.ack, Window: s.win}
	if s.d == rev {
		th.SrcPort, th.DstPort = 80, 1234
	}
	for _, f := range s.flags {
		switch f {
		case 'S':
			th.SYN = true
		case 'A':
			th.ACK = true
		case 'F':
			th.FIN = true
		case 'R':
			th.RST = true
		case 'P':
			th.PSH = true
		case 'U':
			th.URG = true
		}
	}
	if s.withWS {
		th.Options = []layers.TCPOption{
			{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}},
			{OptionType: layers.TCPOptionKindNop},
			{OptionType: layers.TCPOptionKindWindowScale, OptionLength: 3, OptionData: []byte{s.ws}},
		}
	}
	return testframe.Serialize(t, eth, ip, th, gopacket.Payload(make([]byte, s.data)))
}

// step is one packet of a sequence and what the tracker must say.
type step struct {
	name   string
	params uint32
	frame  func(t *testing.T) []byte
	want   uint8 // ct_state
}

func (tr *tracker) play(t *testing.T, steps []step) {
	t.Helper()
	for i, s := range steps {
		r := tr.run(t, s.params, s.frame(t))
		require.Equal(t, ct.StateString(s.want), ct.StateString(r.CtState), "step %d (%s)", i, s.name)
	}
}

func tcpStep(name string, params uint32, want uint8, s seg) step {
	return step{name: name, params: params, want: want, frame: func(t *testing.T) []byte { return tcp(t, s) }}
}

// dumpOne returns the single connection of zone, failing otherwise.
func (tr *tracker) dumpOne(t *testing.T, zone uint16) ct.Entry {
	t.Helper()
	es, err := tr.tab.Dump(&zone)
	require.NoError(t, err)
	require.Len(t, es, 1, "connections in zone %d", zone)
	return es[0]
}

func (tr *tracker) dumpStrings(t *testing.T, zone *uint16) []string {
	t.Helper()
	es, err := tr.tab.Dump(zone)
	require.NoError(t, err)
	out := make([]string, 0, len(es))
	for _, e := range es {
		out = append(out, e.String())
	}
	return out
}
