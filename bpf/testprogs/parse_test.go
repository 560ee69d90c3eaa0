package testprogs

import (
	"encoding/binary"
	"math/bits"
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/testframe"
)

const tcActShot = 2 // TC_ACT_SHOT

// parser is the test_parse program, loaded once per test.
type parser struct {
	objs TestParseObjects
}

func loadParser(t testing.TB) *parser {
	t.Helper()
	p := &parser{}
	require.NoError(t, LoadTestParseObjects(&p.objs, nil), "loading test_parse (needs root and eBPF)")
	t.Cleanup(func() { p.objs.Close() })
	return p
}

// parse runs the parser on frame and returns its result and the program's
// return code.
func (p *parser) parse(t testing.TB, frame []byte) (TestParseParseResult, uint32) {
	t.Helper()
	ret, err := p.objs.TestParse.Run(&ebpf.RunOptions{Data: frame})
	require.NoError(t, err)
	var r TestParseParseResult
	require.NoError(t, p.objs.Result.Lookup(uint32(0), &r))
	return r, ret
}

// drops sums the per-CPU counter of one reason.
func (p *parser) drops(t testing.TB, reason TestParseOvsbpfDrop) uint64 {
	t.Helper()
	var perCPU []uint64
	require.NoError(t, p.objs.Drops.Lookup(uint32(reason), &perCPU))
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// Network-order fields of the key read as host-order integers: swap them.
func be16(v uint16) uint16 { return bits.ReverseBytes16(v) }
func be32(v uint32) uint32 { return bits.ReverseBytes32(v) }

var (
	macA = net.HardwareAddr{0x00, 0x00, 0x00, 0x00, 0x00, 0x01}
	macB = net.HardwareAddr{0x00, 0x00, 0x00, 0x00, 0x00, 0x02}
	ip4A = net.IPv4(10, 0, 0, 1).To4()
	ip4B = net.IPv4(10, 0, 0, 2).To4()
	ip6A = net.ParseIP("fd00::1")
	ip6B = net.ParseIP("fd00::2")
)

// frame serializes layers with lengths and checksums computed.
func frame(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	return testframe.Serialize(t, ls...)
}

func eth(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macA, DstMAC: macB, EthernetType: typ}
}

func ipv4(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, TOS: 0x2e << 2, Protocol: proto, SrcIP: ip4A, DstIP: ip4B}
}

func ipv6(next layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{Version: 6, HopLimit: 255, NextHeader: next, SrcIP: ip6A, DstIP: ip6B, FlowLabel: 0x12345}
}

func TestParseValidFrames(t *testing.T) {
	p := loadParser(t)
	type want func(t *testing.T, n TestParseOvsbpfKey)
	tests := []struct {
		name  string
		frame []byte
		check want
	}{
		{"tcp over ipv4", frame(t, eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP),
			&layers.TCP{SrcPort: 1234, DstPort: 80, SYN: true, ACK: true}), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, [6]uint8{0, 0, 0, 0, 0, 2}, k.N.EthDst)
			require.Equal(t, [6]uint8{0, 0, 0, 0, 0, 1}, k.N.EthSrc)
			require.Equal(t, uint16(0x0800), be16(k.N.EthType))
			require.Equal(t, uint32(0x0a000001), be32(k.N.NwSrc))
			require.Equal(t, uint32(0x0a000002), be32(k.N.NwDst))
			require.Equal(t, uint8(6), k.N.NwProto)
			require.Equal(t, uint8(64), k.N.NwTtl)
			require.Equal(t, uint8(0x2e<<2), k.N.NwTos)
			require.Equal(t, uint16(1234), be16(k.N.TpSrc))
			require.Equal(t, uint16(80), be16(k.N.TpDst))
			require.Equal(t, uint16(0x012), be16(k.N.TcpFlags), "SYN|ACK")
			require.Zero(t, k.N.VlanTci)
		}},
		{"udp in a vlan", frame(t, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 100, Priority: 5, Type: layers.EthernetTypeIPv4},
			ipv4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 68, DstPort: 67}), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, uint16(0x1000|5<<13|100), be16(k.N.VlanTci))
			require.Equal(t, uint16(0x0800), be16(k.N.EthType))
			require.Equal(t, uint16(67), be16(k.N.TpDst))
		}},
		{"icmp echo", frame(t, eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4),
			&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)}), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, uint16(8), be16(k.N.TpSrc))
			require.Equal(t, uint16(0), be16(k.N.TpDst))
		}},
		{"arp request", frame(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: macA, SourceProtAddress: ip4A,
			DstHwAddress: make([]byte, 6), DstProtAddress: ip4B}), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, uint16(0x0806), be16(k.N.EthType))
			require.Equal(t, uint8(1), k.N.NwProto, "the opcode")
			require.Equal(t, uint32(0x0a000001), be32(k.N.NwSrc), "sender protocol address")
			require.Equal(t, uint32(0x0a000002), be32(k.N.NwDst), "target protocol address")
			var sha [6]byte
			binary.LittleEndian.PutUint16(sha[0:], k.N.TpSrc)
			binary.LittleEndian.PutUint16(sha[2:], k.N.TpDst)
			binary.LittleEndian.PutUint16(sha[4:], k.N.TcpFlags)
			require.Equal(t, [6]byte{0, 0, 0, 0, 0, 1}, sha, "sender hardware address, where ARP has no ports")
		}},
		{"first ipv4 fragment", func() []byte {
			ip := ipv4(layers.IPProtocolUDP)
			ip.Flags = layers.IPv4MoreFragments
			return frame(t, eth(layers.EthernetTypeIPv4), ip, &layers.UDP{SrcPort: 1, DstPort: 2})
		}(), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, uint8(1), k.N.NwFrag)
			require.Equal(t, uint16(2), be16(k.N.TpDst), "the first fragment has the ports")
		}},
		{"later ipv4 fragment", func() []byte {
			ip := ipv4(layers.IPProtocolUDP)
			ip.FragOffset = 100
			return frame(t, eth(layers.EthernetTypeIPv4), ip, gopacket.Payload(make([]byte, 16)))
		}(), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, uint8(3), k.N.NwFrag)
			require.Zero(t, k.N.TpDst, "a later fragment has no L4 header")
		}},
		{"ipv4 with options", func() []byte {
			ip := ipv4(layers.IPProtocolTCP)
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
			return frame(t, eth(layers.EthernetTypeIPv4), ip, &layers.TCP{SrcPort: 9, DstPort: 10})
		}(), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, uint16(10), be16(k.N.TpDst), "the L4 header starts after the options")
		}},
		{"tcp over ipv6", frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolTCP), &layers.TCP{SrcPort: 5, DstPort: 443}),
			func(t *testing.T, k TestParseOvsbpfKey) {
				require.Equal(t, [16]uint8(net.ParseIP("fd00::1").To16()), k.W.Ipv6Src)
				require.Equal(t, [16]uint8(net.ParseIP("fd00::2").To16()), k.W.Ipv6Dst)
				require.Equal(t, uint32(0x12345), be32(k.W.Ipv6Label))
				require.Equal(t, uint8(255), k.N.NwTtl)
				require.Equal(t, uint8(6), k.N.NwProto)
				require.Equal(t, uint16(443), be16(k.N.TpDst))
				require.Zero(t, k.N.NwSrc)
			}},
		{"ipv6 through hop-by-hop and fragment headers", frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolIPv6HopByHop),
			gopacket.Payload(concat(hopByHop(44), fragmentHeader(17, 0), udpHeader(546, 547)))), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, uint8(17), k.N.NwProto)
			require.Equal(t, uint16(547), be16(k.N.TpDst))
			require.Equal(t, uint8(1), k.N.NwFrag, "a fragment header with offset 0: the first fragment")
		}},
		{"neighbour solicitation", frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)},
			&layers.ICMPv6NeighborSolicitation{TargetAddress: ip6B, Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macA}}}),
			func(t *testing.T, k TestParseOvsbpfKey) {
				require.Equal(t, uint16(135), be16(k.N.TpSrc))
				require.Equal(t, [16]uint8(ip6B.To16()), k.W.NdTarget)
				require.Equal(t, [6]uint8{0, 0, 0, 0, 0, 1}, k.W.NdSll)
				require.Zero(t, k.W.NdTll)
			}},
		{"neighbour advertisement", frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
			&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(136, 0)},
			&layers.ICMPv6NeighborAdvertisement{TargetAddress: ip6A, Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptTargetAddress, Data: macB}}}),
			func(t *testing.T, k TestParseOvsbpfKey) {
				require.Equal(t, [16]uint8(ip6A.To16()), k.W.NdTarget)
				require.Equal(t, [6]uint8{0, 0, 0, 0, 0, 2}, k.W.NdTll)
			}},
		{"other ethernet type: L2 only", frame(t, eth(layers.EthernetType(0x88cc)), gopacket.Payload(make([]byte, 46))), func(t *testing.T, k TestParseOvsbpfKey) {
			require.Equal(t, uint16(0x88cc), be16(k.N.EthType))
			require.Zero(t, k.N.NwProto)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, ret := p.parse(t, tt.frame)
			require.Equal(t, TestParseOvsbpfDropOVSBPF_PARSE_OK, r.Verdict)
			require.Equal(t, uint32(tcActOK), ret)
			tt.check(t, r.Key)
		})
	}
}

// hopByHop is an 8-byte hop-by-hop options header (one PadN option).
func hopByHop(next byte) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }

// fragmentHeader is an IPv6 fragment header with the given offset (in
// 8-byte units).
func fragmentHeader(next byte, offset uint16) []byte {
	return []byte{next, 0, byte(offset >> 5), byte(offset << 3), 0, 0, 0, 1}
}

func udpHeader(src, dst uint16) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b, src)
	binary.BigEndian.PutUint16(b[2:], dst)
	binary.BigEndian.PutUint16(b[4:], 8)
	return b
}

func concat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// truncIPv4 cuts an Ethernet/IPv4 frame to n bytes and makes the IPv4 total
// length agree, so that what is short is the header after IPv4.
func truncIPv4(f []byte, n int) []byte {
	f = append([]byte(nil), f[:n]...)
	binary.BigEndian.PutUint16(f[14+2:], uint16(n-14))
	return f
}

// truncIPv6 does the same for IPv6's payload length.
func truncIPv6(f []byte, n int) []byte {
	f = append([]byte(nil), f[:n]...)
	binary.BigEndian.PutUint16(f[14+4:], uint16(n-14-40))
	return f
}

func poke(f []byte, at int, b ...byte) []byte {
	f = append([]byte(nil), f...)
	copy(f[at:], b)
	return f
}

func TestParseDropsMalformedFrames(t *testing.T) {
	p := loadParser(t)
	tcp4 := frame(t, eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2})
	udp4 := frame(t, eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 2})
	icmp4 := frame(t, eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolICMPv4), &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0)})
	arp := frame(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
		HwAddressSize: 6, ProtAddressSize: 4, Operation: 1, SourceHwAddress: macA, SourceProtAddress: ip4A,
		DstHwAddress: make([]byte, 6), DstProtAddress: ip4B})
	udp6 := frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 2})
	ns := frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6),
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)},
		&layers.ICMPv6NeighborSolicitation{TargetAddress: ip6B, Options: layers.ICMPv6Options{{Type: layers.ICMPv6OptSourceAddress, Data: macA}}})
	var sevenHops []byte // one more than the parser follows
	for range TestParseOvsbpfParseLimitIPV6MAX_EXT + 1 {
		sevenHops = append(sevenHops, hopByHop(0)...)
	}
	l2 := func(typ uint16, rest ...byte) []byte {
		f := make([]byte, 14, 14+len(rest))
		copy(f, macB)
		copy(f[6:], macA)
		binary.BigEndian.PutUint16(f[12:], typ)
		return append(f, rest...)
	}
	tests := []struct {
		name   string
		frame  []byte
		reason TestParseOvsbpfDrop
	}{
		{"vlan tag cut short", l2(0x8100, 0x00), TestParseOvsbpfDropOVSBPF_DROP_SHORT_VLAN},
		{"stacked vlan tags", l2(0x88a8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x65, 0x08, 0x00), TestParseOvsbpfDropOVSBPF_DROP_STACKED_VLAN},
		{"arp cut short", arp[:14+20], TestParseOvsbpfDropOVSBPF_DROP_SHORT_ARP},
		{"arp for another link type", poke(arp, 14, 0x00, 0x06), TestParseOvsbpfDropOVSBPF_DROP_BAD_ARP},
		// BPF_PROG_TEST_RUN refuses an IPv4 or IPv6 frame too short for
		// its header, though a VM can send one; behind a VLAN tag it
		// reaches the parser.
		{"ipv4 header cut short", concat(l2(0x8100, 0x00, 0x05, 0x08, 0x00), tcp4[14:14+12]), TestParseOvsbpfDropOVSBPF_DROP_SHORT_IPV4},
		{"ipv4 IHL below 5", poke(tcp4, 14, 0x44), TestParseOvsbpfDropOVSBPF_DROP_BAD_IPV4},
		{"ipv4 IHL past the end", poke(tcp4, 14, 0x4f, 0x00, 0x00, 60), TestParseOvsbpfDropOVSBPF_DROP_SHORT_IPV4},
		{"ipv4 total length past the end", poke(udp4, 14+2, 0x05, 0xdc), TestParseOvsbpfDropOVSBPF_DROP_SHORT_IPV4},
		{"ipv4 total length below the header", poke(udp4, 14+2, 0x00, 0x10), TestParseOvsbpfDropOVSBPF_DROP_BAD_IPV4},
		{"not version 4", poke(udp4, 14, 0x65), TestParseOvsbpfDropOVSBPF_DROP_BAD_IPV4},
		{"tcp header cut short", truncIPv4(tcp4, 14+20+12), TestParseOvsbpfDropOVSBPF_DROP_SHORT_L4},
		{"tcp data offset below 5", poke(tcp4, 14+20+12, 0x40), TestParseOvsbpfDropOVSBPF_DROP_BAD_TCP},
		{"tcp options past the end", poke(tcp4, 14+20+12, 0xf0), TestParseOvsbpfDropOVSBPF_DROP_BAD_TCP},
		{"udp header cut short", truncIPv4(udp4, 14+20+6), TestParseOvsbpfDropOVSBPF_DROP_SHORT_L4},
		{"icmp header cut short", truncIPv4(icmp4, 14+20+2), TestParseOvsbpfDropOVSBPF_DROP_SHORT_L4},
		{"ipv6 header cut short", concat(l2(0x8100, 0x00, 0x05, 0x86, 0xdd), udp6[14:14+30]), TestParseOvsbpfDropOVSBPF_DROP_SHORT_IPV6},
		{"not version 6", poke(udp6, 14, 0x45), TestParseOvsbpfDropOVSBPF_DROP_BAD_IPV6},
		{"ipv6 payload length past the end", poke(udp6, 14+4, 0x05, 0xdc), TestParseOvsbpfDropOVSBPF_DROP_SHORT_IPV6},
		{"seven extension headers", frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolIPv6HopByHop), gopacket.Payload(concat(sevenHops, udpHeader(1, 2)))),
			TestParseOvsbpfDropOVSBPF_DROP_IPV6EXT},
		{"extension header cut short", truncIPv6(frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolIPv6HopByHop), gopacket.Payload(concat(hopByHop(0), hopByHop(17)))), 14+40+9),
			TestParseOvsbpfDropOVSBPF_DROP_IPV6EXT},
		{"nd target cut short", truncIPv6(ns, 14+40+8+8), TestParseOvsbpfDropOVSBPF_DROP_BAD_ND},
		{"nd option of length 0", poke(ns, 14+40+8+16+1, 0), TestParseOvsbpfDropOVSBPF_DROP_BAD_ND},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := p.drops(t, tt.reason)
			r, ret := p.parse(t, tt.frame)
			require.Equal(t, tt.reason, r.Verdict)
			require.Equal(t, uint32(tcActShot), ret, "a malformed frame is dropped")
			require.Equal(t, before+1, p.drops(t, tt.reason), "and counted under its reason")
		})
	}
}

// maxFrame is the largest frame fuzzed: a 1500-byte MTU plus the Ethernet
// header (BPF_PROG_TEST_RUN also refuses frames over about a page).
const maxFrame = 1514

// FuzzParse feeds arbitrary frames to the loaded parser through
// BPF_PROG_TEST_RUN. Whatever the bytes, the program returns a verdict,
// and a frame it accepts has the key its Ethernet header says.
func FuzzParse(f *testing.F) {
	p := loadParser(f)
	for _, seed := range [][]byte{
		frame(f, eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolTCP), &layers.TCP{SrcPort: 1, DstPort: 2}),
		frame(f, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolICMPv6), &layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(135, 0)},
			&layers.ICMPv6NeighborSolicitation{TargetAddress: ip6B}),
		frame(f, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{VLANIdentifier: 7, Type: layers.EthernetTypeARP}, &layers.ARP{AddrType: layers.LinkTypeEthernet,
			Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4, Operation: 2, SourceHwAddress: macA, SourceProtAddress: ip4A,
			DstHwAddress: macB, DstProtAddress: ip4B}),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFrame {
			b = b[:maxFrame]
		}
		if testframe.RefusedByTestRun(b) {
			return
		}
		r, ret := p.parse(t, b)
		if r.Verdict != TestParseOvsbpfDropOVSBPF_PARSE_OK {
			require.Equal(t, uint32(tcActShot), ret)
			require.Less(t, r.Verdict, TestParseOvsbpfDropOVSBPF_DROP__MAX)
			return
		}
		require.Equal(t, uint32(tcActOK), ret)
		require.Equal(t, [6]uint8(b[0:6]), r.Key.N.EthDst)
		typ := binary.BigEndian.Uint16(b[12:])
		if typ == 0x8100 || typ == 0x88a8 {
			typ = binary.BigEndian.Uint16(b[16:])
		}
		require.Equal(t, typ, be16(r.Key.N.EthType))
	})
}

// The parser says where the headers are, for the actions that rewrite them.
func TestParseOffsets(t *testing.T) {
	p := loadParser(t)
	tests := []struct {
		name         string
		frame        []byte
		l3Off, l4Off uint16
	}{
		{"ipv4", frame(t, eth(layers.EthernetTypeIPv4), ipv4(layers.IPProtocolUDP), &layers.UDP{}), 14, 34},
		{"vlan, ipv4", frame(t, eth(layers.EthernetTypeDot1Q), &layers.Dot1Q{Type: layers.EthernetTypeIPv4}, ipv4(layers.IPProtocolUDP), &layers.UDP{}), 18, 38},
		{"ipv6 with a hop-by-hop header", frame(t, eth(layers.EthernetTypeIPv6), ipv6(layers.IPProtocolIPv6HopByHop), gopacket.Payload(concat(hopByHop(17), udpHeader(1, 2)))), 14, 62},
		{"arp", frame(t, eth(layers.EthernetTypeARP), &layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4,
			HwAddressSize: 6, ProtAddressSize: 4, SourceHwAddress: macA, SourceProtAddress: ip4A, DstHwAddress: macB, DstProtAddress: ip4B}), 14, 0},
		{"no L3", frame(t, eth(layers.EthernetType(0x88cc)), gopacket.Payload(make([]byte, 46))), 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := p.parse(t, tt.frame)
			require.Equal(t, tt.l3Off, r.L3Off)
			require.Equal(t, tt.l4Off, r.L4Off)
		})
	}
}
