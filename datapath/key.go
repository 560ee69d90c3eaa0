package datapath

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"unsafe"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// Key is the narrow flow key (struct ovsbpf_narrow in bpf/include/key.h):
// what a megaflow matches on. Header fields hold network byte order as the C
// does; use the accessors rather than the raw fields for those.
type Key bpf.DatapathOvsbpfNarrow

// Mask has a Key's layout; a 1 bit says the bit of the key matters.
type Mask = Key

// PacketKey is everything the parser extracted from one packet: the narrow
// key and the wide part (IPv6, neighbour discovery, ct_label, tunnel).
type PacketKey bpf.DatapathOvsbpfKey

// KeySize is the size of a Key in bytes: the hash key of a megaflow.
const KeySize = int(unsafe.Sizeof(Key{}))

// VLANPresent is the vlan_tci bit that says a tag is present
// (OVSBPF_VLAN_PRESENT).
const VLANPresent = uint16(bpf.DatapathOvsbpfVlanOVSBPF_VLAN_PRESENT)

// Fragment bits of Key.NwFrag (enum ovsbpf_frag).
const (
	FragAny   = uint8(bpf.DatapathOvsbpfFragOVSBPF_FRAG_ANY)   // the packet is a fragment
	FragLater = uint8(bpf.DatapathOvsbpfFragOVSBPF_FRAG_LATER) // and not the first one
)

// Where the narrow key keeps the fields FormatFlow and the ARP accessors
// read as bytes, from the generated layout. ARP's sender and target
// hardware addresses overlay tp_src..tcp_flags and ct_zone..ct_mark (ARP
// has no ports and no conntrack); TestLayoutMatchesBTF checks that both
// runs are the six contiguous bytes the parser copies there.
const (
	offEthDst = int(unsafe.Offsetof(Key{}.EthDst))
	offEthSrc = int(unsafe.Offsetof(Key{}.EthSrc))
	offNwSrc  = int(unsafe.Offsetof(Key{}.NwSrc))
	offNwDst  = int(unsafe.Offsetof(Key{}.NwDst))
	offARPSHA = int(unsafe.Offsetof(Key{}.TpSrc))
	offARPTHA = int(unsafe.Offsetof(Key{}.CtZone))
)

// Ethernet types the key formatting knows.
const (
	EthTypeIPv4 = 0x0800
	EthTypeARP  = 0x0806
	EthTypeIPv6 = 0x86dd
)

func (k *Key) bytes() *[KeySize]byte { return (*[KeySize]byte)(unsafe.Pointer(k)) }

// Raw returns the key's bytes, as the datapath hashes them, for in-place
// use; the accessors know which fields are big-endian, Raw does not.
func (k *Key) Raw() *[KeySize]byte { return k.bytes() }

// Bytes returns the key as the datapath hashes it.
func (k Key) Bytes() []byte { b := *k.bytes(); return b[:] }

// And returns k with only the bits of m kept.
func (k Key) And(m *Mask) Key {
	out := k
	ob, mb := out.bytes(), m.bytes()
	for i := range ob {
		ob[i] &= mb[i]
	}
	return out
}

// IsZero reports whether no bit of k is set.
func (k *Key) IsZero() bool { return *k.bytes() == [KeySize]byte{} }

// Covers reports whether every bit set in other is set in m.
func (m *Mask) Covers(other *Mask) bool {
	a, b := m.bytes(), other.bytes()
	for i := range a {
		if b[i]&^a[i] != 0 {
			return false
		}
	}
	return true
}

func be16(v uint16) uint16 { return v>>8 | v<<8 }

func be32(v uint32) uint32 {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return binary.LittleEndian.Uint32(b[:])
}

// EtherType returns the Ethernet type (after any VLAN tag).
func (k *Key) EtherType() uint16 { return be16(k.EthType) }

// SetEtherType sets the Ethernet type.
func (k *Key) SetEtherType(t uint16) { k.EthType = be16(t) }

// VLAN returns the VLAN TCI with VLANPresent set when tagged, else 0.
func (k *Key) VLAN() uint16 { return be16(k.VlanTci) }

// SetVLAN sets the VLAN TCI (VLANPresent included).
func (k *Key) SetVLAN(v uint16) { k.VlanTci = be16(v) }

// IPv4Src returns the IPv4 source (ARP: the sender protocol address).
func (k *Key) IPv4Src() netip.Addr { return addr4(k.NwSrc) }

// IPv4Dst returns the IPv4 destination (ARP: the target protocol address).
func (k *Key) IPv4Dst() netip.Addr { return addr4(k.NwDst) }

// SetIPv4Src sets the IPv4 source.
func (k *Key) SetIPv4Src(a netip.Addr) { k.NwSrc = raw4(a) }

// SetIPv4Dst sets the IPv4 destination.
func (k *Key) SetIPv4Dst(a netip.Addr) { k.NwDst = raw4(a) }

func addr4(raw uint32) netip.Addr {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], raw)
	return netip.AddrFrom4(b)
}

func raw4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.LittleEndian.Uint32(b[:])
}

// L4Src returns the L4 source port (ICMP: the type).
func (k *Key) L4Src() uint16 { return be16(k.TpSrc) }

// L4Dst returns the L4 destination port (ICMP: the code).
func (k *Key) L4Dst() uint16 { return be16(k.TpDst) }

// SetL4Src sets the L4 source port (ICMP: the type).
func (k *Key) SetL4Src(p uint16) { k.TpSrc = be16(p) }

// SetL4Dst sets the L4 destination port (ICMP: the code).
func (k *Key) SetL4Dst(p uint16) { k.TpDst = be16(p) }

// TCPFlagBits returns the low 12 bits of the TCP flags word.
func (k *Key) TCPFlagBits() uint16 { return be16(k.TcpFlags) }

// ARPSHA returns ARP's sender hardware address, which the key keeps in the
// bytes of the L4 ports, TCP flags and ct_zone (ARP has none of those).
func (k *Key) ARPSHA() net.HardwareAddr { return net.HardwareAddr(k.Bytes()[offARPSHA : offARPSHA+6]) }

// ARPTHA returns ARP's target hardware address (the ct_zone and ct_mark
// bytes of the key).
func (k *Key) ARPTHA() net.HardwareAddr { return net.HardwareAddr(k.Bytes()[offARPTHA : offARPTHA+6]) }

// SetARPSHA sets ARP's sender hardware address.
func (k *Key) SetARPSHA(mac [6]byte) { copy(k.bytes()[offARPSHA:offARPSHA+6], mac[:]) }

// SetARPTHA sets ARP's target hardware address.
func (k *Key) SetARPTHA(mac [6]byte) { copy(k.bytes()[offARPTHA:offARPTHA+6], mac[:]) }

// IPv6Src returns the IPv6 source of a packet key.
func (p *PacketKey) IPv6Src() netip.Addr { return netip.AddrFrom16(p.W.Ipv6Src) }

// IPv6Dst returns the IPv6 destination of a packet key.
func (p *PacketKey) IPv6Dst() netip.Addr { return netip.AddrFrom16(p.W.Ipv6Dst) }

// Narrow returns the narrow part of a packet key.
func (p *PacketKey) Narrow() Key { return Key(p.N) }

// SetNarrow sets the narrow part of a packet key.
func (p *PacketKey) SetNarrow(k Key) { p.N = bpf.DatapathOvsbpfNarrow(k) }

// String formats a key with every field, as the datapath sees a packet.
func (k Key) String() string {
	var m Mask
	for i := range m.bytes() {
		m.bytes()[i] = 0xff
	}
	return FormatFlow(&k, &m)
}

// FormatFlow writes a megaflow's match in Open vSwitch's datapath flow
// syntax (ovs-dpctl dump-flows), showing only the fields the mask keeps
// and a field's mask only when it is partial.
func FormatFlow(k *Key, m *Mask) string {
	var parts []string
	add := func(s string) { parts = append(parts, s) }
	kb, mb := k.bytes(), m.bytes()

	if k.RecircId == 0 {
		add("recirc_id(0)")
	} else {
		add(fmt.Sprintf("recirc_id(%#x)", k.RecircId))
	}
	if m.InPort != 0 {
		add(fmt.Sprintf("in_port(%d)", k.InPort))
	}
	if m.CtState != 0 {
		add(fmt.Sprintf("ct_state(%s)", formatCTState(k.CtState, m.CtState)))
	}
	ethType := k.EtherType()
	isARP := ethType == EthTypeARP && m.EthType != 0
	if !isARP {
		if m.CtZone != 0 {
			add(fmt.Sprintf("ct_zone(%s)", hexMasked(uint64(k.CtZone), uint64(m.CtZone), 0xffff)))
		}
		if m.CtMark != 0 {
			add(fmt.Sprintf("ct_mark(%s)", hexMasked(uint64(k.CtMark), uint64(m.CtMark), 0xffffffff)))
		}
	}
	var eth fieldList
	eth.mac("src", kb[offEthSrc:offEthSrc+6], mb[offEthSrc:offEthSrc+6])
	eth.mac("dst", kb[offEthDst:offEthDst+6], mb[offEthDst:offEthDst+6])
	if s := eth.String(); s != "" {
		add("eth(" + s + ")")
	}
	if m.VlanTci != 0 {
		tci, tm := k.VLAN(), m.VLAN()
		var v fieldList
		v.num("vid", uint64(tci&0xfff), uint64(tm&0xfff), 0xfff)
		v.num("pcp", uint64(tci>>13), uint64(tm>>13), 7)
		if tci&VLANPresent == 0 {
			add("vlan(none)")
		} else {
			add("vlan(" + v.String() + ")")
		}
	}
	if m.EthType == 0 {
		return strings.Join(parts, ",")
	}
	add(fmt.Sprintf("eth_type(%#04x)", ethType))
	switch ethType {
	case EthTypeARP:
		var a fieldList
		a.ip("sip", kb[offNwSrc:offNwSrc+4], mb[offNwSrc:offNwSrc+4])
		a.ip("tip", kb[offNwDst:offNwDst+4], mb[offNwDst:offNwDst+4])
		a.num("op", uint64(k.NwProto), uint64(m.NwProto), 0xff)
		a.mac("sha", kb[offARPSHA:offARPSHA+6], mb[offARPSHA:offARPSHA+6])
		a.mac("tha", kb[offARPTHA:offARPTHA+6], mb[offARPTHA:offARPTHA+6])
		if s := a.String(); s != "" {
			add("arp(" + s + ")")
		}
		return strings.Join(parts, ",")
	case EthTypeIPv4, EthTypeIPv6:
	default:
		return strings.Join(parts, ",")
	}
	var ip fieldList
	if ethType == EthTypeIPv4 {
		ip.ip("src", kb[offNwSrc:offNwSrc+4], mb[offNwSrc:offNwSrc+4])
		ip.ip("dst", kb[offNwDst:offNwDst+4], mb[offNwDst:offNwDst+4])
	}
	ip.num("proto", uint64(k.NwProto), uint64(m.NwProto), 0xff)
	ip.num("tos", uint64(k.NwTos), uint64(m.NwTos), 0xff)
	ip.num("ttl", uint64(k.NwTtl), uint64(m.NwTtl), 0xff)
	if m.NwFrag != 0 {
		ip.add("frag=" + formatFrag(k.NwFrag, m.NwFrag))
	}
	name := "ipv4"
	if ethType == EthTypeIPv6 {
		name = "ipv6"
	}
	if s := ip.String(); s != "" {
		add(name + "(" + s + ")")
	}
	if m.NwProto != 0xff || k.NwFrag&FragLater != 0 {
		return strings.Join(parts, ",")
	}
	var l4 fieldList
	src, dst := uint64(k.L4Src()), uint64(k.L4Dst())
	srcM, dstM := uint64(m.L4Src()), uint64(m.L4Dst())
	var l4name string
	switch {
	case k.NwProto == 6:
		l4name = "tcp"
	case k.NwProto == 17:
		l4name = "udp"
	case k.NwProto == 132:
		l4name = "sctp"
	case k.NwProto == 1 && ethType == EthTypeIPv4:
		l4name = "icmp"
	case k.NwProto == 58 && ethType == EthTypeIPv6:
		l4name = "icmpv6"
	}
	switch l4name {
	case "":
		return strings.Join(parts, ",")
	case "icmp", "icmpv6":
		l4.num("type", src, srcM, 0xff)
		l4.num("code", dst, dstM, 0xff)
	default:
		l4.num("src", src, srcM, 0xffff)
		l4.num("dst", dst, dstM, 0xffff)
	}
	if s := l4.String(); s != "" {
		add(l4name + "(" + s + ")")
	}
	if l4name == "tcp" && m.TcpFlags != 0 {
		add(fmt.Sprintf("tcp_flags(%s)", formatTCPFlags(k.TCPFlagBits(), m.TCPFlagBits())))
	}
	return strings.Join(parts, ",")
}

// fieldList collects name=value pairs for one OVS key attribute.
type fieldList []string

func (f *fieldList) add(s string) { *f = append(*f, s) }

func (f fieldList) String() string { return strings.Join(f, ",") }

func (f *fieldList) mac(name string, v, m []byte) {
	if allZero(m) {
		return
	}
	s := name + "=" + net.HardwareAddr(v).String()
	if !allOnes(m) {
		s += "/" + net.HardwareAddr(m).String()
	}
	f.add(s)
}

func (f *fieldList) ip(name string, v, m []byte) {
	if allZero(m) {
		return
	}
	s := name + "=" + netip.AddrFrom4([4]byte(v)).String()
	if !allOnes(m) {
		s += "/" + netip.AddrFrom4([4]byte(m)).String()
	}
	f.add(s)
}

func (f *fieldList) num(name string, v, m, full uint64) {
	if m == 0 {
		return
	}
	if m == full {
		f.add(fmt.Sprintf("%s=%d", name, v))
		return
	}
	f.add(fmt.Sprintf("%s=%#x/%#x", name, v, m))
}

func hexMasked(v, m, full uint64) string {
	if m == full {
		return fmt.Sprintf("%#x", v)
	}
	return fmt.Sprintf("%#x/%#x", v, m)
}

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

func allOnes(b []byte) bool {
	for _, x := range b {
		if x != 0xff {
			return false
		}
	}
	return true
}

// formatFrag writes nw_frag as OVS does: no, first, later, or a mask.
func formatFrag(v, m uint8) string {
	switch {
	case m&FragAny != 0 && v&FragAny == 0:
		return "no"
	case m == FragAny|FragLater && v&FragLater != 0:
		return "later"
	case m == FragAny|FragLater:
		return "first"
	case m == FragAny:
		return "yes"
	}
	return fmt.Sprintf("%#x/%#x", v, m)
}

// Conntrack state bits as OVS numbers them.
var ctStateNames = []struct {
	bit  uint8
	name string
}{{0x01, "new"}, {0x02, "est"}, {0x04, "rel"}, {0x08, "rpl"}, {0x10, "inv"}, {0x20, "trk"}, {0x40, "snat"}, {0x80, "dnat"}}

func formatCTState(v, m uint8) string {
	var s []string
	for _, b := range ctStateNames {
		if m&b.bit == 0 {
			continue
		}
		if v&b.bit != 0 {
			s = append(s, "+"+b.name)
		} else {
			s = append(s, "-"+b.name)
		}
	}
	return strings.Join(s, "")
}

var tcpFlagNames = []string{"fin", "syn", "rst", "psh", "ack", "urg", "ece", "cwr", "ns"}

func formatTCPFlags(v, m uint16) string {
	var s []string
	for i, n := range tcpFlagNames {
		bit := uint16(1) << i
		if m&bit == 0 {
			continue
		}
		if v&bit != 0 {
			s = append(s, "+"+n)
		} else {
			s = append(s, "-"+n)
		}
	}
	if len(s) == 0 {
		return fmt.Sprintf("%#x/%#x", v, m)
	}
	return strings.Join(s, "")
}
