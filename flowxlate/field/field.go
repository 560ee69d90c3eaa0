// Package field owns the one field set that every flowxlate pipeline matches
// on and modifies: packet headers, registers, pipeline metadata and conntrack
// state, laid out in a fixed-size Key.
//
// The field set follows Open vSwitch's flow fields closely, so that OpenFlow
// rules and OVN logical flows compile into the same pipeline: several fields
// share storage where OVS shares it (ARP's sender address is the IPv4 source,
// ICMP's type is the low byte of the L4 source port, xxreg0 is reg0..reg3).
// A Mask has the Key's layout; the interpreter sets in it every bit it read,
// which is the megaflow mask the datapath installs.
package field

import "fmt"

// ID names one field of the field set.
type ID uint16

// Format says how a field's value is shown.
type Format uint8

// Value formats.
const (
	FormatHex Format = iota
	FormatDecimal
	FormatEthernet
	FormatIPv4
	FormatIPv6
	FormatCTState
	FormatFrag
	FormatTCPFlags
)

// Prereq is the protocol a packet must carry for a header field to exist, as
// OpenFlow defines it. A set-field on a packet that lacks it does nothing.
type Prereq uint8

// Prerequisites.
const (
	PrereqNone Prereq = iota
	PrereqVLAN
	PrereqARP
	PrereqIPv4
	PrereqIPv6
	PrereqIP
	PrereqTCP
	PrereqUDP
	PrereqSCTP
	PrereqICMPv4
	PrereqICMPv6
	PrereqND
	PrereqNDSolicit
	PrereqNDAdvert
)

// Desc describes a field: its name, width and where it is stored in a Key.
type Desc struct {
	ID       ID
	Name     string // OpenFlow-style name: "reg0", "eth_src", "nw_ttl"
	Bits     int    // width in bits as matches and actions see it
	Off      int    // byte offset of the storage in a Key
	Size     int    // bytes of storage
	Shift    int    // bit position of the field's least significant bit in the storage
	Format   Format
	Maskable bool // may be matched with an arbitrary bitmask
	Writable bool // may be the destination of a set-field or move
	Prereq   Prereq
}

// Storage offsets in a Key, in bytes. Each storage area is big-endian.
const (
	offInPort    = 0   // 4
	offMetadata  = 4   // 8
	offRegs      = 12  // 16 × 4
	offTunID     = 76  // 8
	offPktMark   = 84  // 4
	offCTState   = 88  // 4
	offCTZone    = 92  // 2
	offCTMark    = 94  // 4
	offCTLabel   = 98  // 16
	offCTNwSrc   = 114 // 4
	offCTNwDst   = 118 // 4
	offCTIPv6Src = 122 // 16
	offCTIPv6Dst = 138 // 16
	offCTNwProto = 154 // 1
	offCTTpSrc   = 155 // 2
	offCTTpDst   = 157 // 2
	offEthSrc    = 159 // 6
	offEthDst    = 165 // 6
	offEthType   = 171 // 2
	offVLANTCI   = 173 // 2
	offNwSrc     = 175 // 4
	offNwDst     = 179 // 4
	offIPv6Src   = 183 // 16
	offIPv6Dst   = 199 // 16
	offIPv6Label = 215 // 4
	offNwProto   = 219 // 1
	offNwTos     = 220 // 1
	offNwTTL     = 221 // 1
	offNwFrag    = 222 // 1
	offARPSHA    = 223 // 6
	offARPTHA    = 229 // 6
	offNDTarget  = 235 // 16
	offTpSrc     = 251 // 2
	offTpDst     = 253 // 2
	offTCPFlags  = 255 // 2

	// KeyLen is the size of a Key in bytes.
	KeyLen = 257
)

// NumRegs is the number of 32-bit registers.
const NumRegs = 16

// Field IDs.
const (
	InPort ID = iota
	Metadata
	TunID
	PktMark
	CTState
	CTZone
	CTMark
	CTLabel
	CTNwSrc
	CTNwDst
	CTIPv6Src
	CTIPv6Dst
	CTNwProto
	CTTpSrc
	CTTpDst
	EthSrc
	EthDst
	EthType
	VLANTCI
	IPv4Src
	IPv4Dst
	IPv6Src
	IPv6Dst
	IPv6Label
	IPProto
	IPDSCP
	IPECN
	IPTTL
	IPFrag
	ARPOp
	ARPSPA
	ARPTPA
	ARPSHA
	ARPTHA
	NDTarget
	NDSLL
	NDTLL
	TCPSrc
	TCPDst
	TCPFlags
	UDPSrc
	UDPDst
	SCTPSrc
	SCTPDst
	ICMPv4Type
	ICMPv4Code
	ICMPv6Type
	ICMPv6Code
	Reg0 // Reg0..Reg15 follow in order
)

// Register IDs beyond Reg0.
const (
	XReg0  = Reg0 + NumRegs     // XReg0..XReg7
	XXReg0 = XReg0 + NumRegs/2  // XXReg0..XXReg3
	numIDs = XXReg0 + NumRegs/4 // number of field IDs
)

// Reg returns the ID of 32-bit register i.
func Reg(i int) ID { return Reg0 + ID(i) }

// XReg returns the ID of 64-bit register i (reg 2i is its high half).
func XReg(i int) ID { return XReg0 + ID(i) }

// XXReg returns the ID of 128-bit register i (reg 4i is its high quarter).
func XXReg(i int) ID { return XXReg0 + ID(i) }

var descs = buildDescs()

func buildDescs() []Desc {
	d := make([]Desc, numIDs)
	set := func(id ID, name string, bits, off, size, shift int, f Format, maskable, writable bool, p Prereq) {
		d[id] = Desc{ID: id, Name: name, Bits: bits, Off: off, Size: size, Shift: shift,
			Format: f, Maskable: maskable, Writable: writable, Prereq: p}
	}
	const rw, ro = true, false
	const mask, nomask = true, false
	set(InPort, "in_port", 32, offInPort, 4, 0, FormatDecimal, nomask, rw, PrereqNone)
	set(Metadata, "metadata", 64, offMetadata, 8, 0, FormatHex, mask, rw, PrereqNone)
	set(TunID, "tun_id", 64, offTunID, 8, 0, FormatHex, mask, rw, PrereqNone)
	set(PktMark, "pkt_mark", 32, offPktMark, 4, 0, FormatHex, mask, rw, PrereqNone)
	set(CTState, "ct_state", 32, offCTState, 4, 0, FormatCTState, mask, ro, PrereqNone)
	set(CTZone, "ct_zone", 16, offCTZone, 2, 0, FormatHex, nomask, ro, PrereqNone)
	set(CTMark, "ct_mark", 32, offCTMark, 4, 0, FormatHex, mask, rw, PrereqNone)
	set(CTLabel, "ct_label", 128, offCTLabel, 16, 0, FormatHex, mask, rw, PrereqNone)
	set(CTNwSrc, "ct_nw_src", 32, offCTNwSrc, 4, 0, FormatIPv4, mask, ro, PrereqNone)
	set(CTNwDst, "ct_nw_dst", 32, offCTNwDst, 4, 0, FormatIPv4, mask, ro, PrereqNone)
	set(CTIPv6Src, "ct_ipv6_src", 128, offCTIPv6Src, 16, 0, FormatIPv6, mask, ro, PrereqNone)
	set(CTIPv6Dst, "ct_ipv6_dst", 128, offCTIPv6Dst, 16, 0, FormatIPv6, mask, ro, PrereqNone)
	set(CTNwProto, "ct_nw_proto", 8, offCTNwProto, 1, 0, FormatDecimal, nomask, ro, PrereqNone)
	set(CTTpSrc, "ct_tp_src", 16, offCTTpSrc, 2, 0, FormatDecimal, mask, ro, PrereqNone)
	set(CTTpDst, "ct_tp_dst", 16, offCTTpDst, 2, 0, FormatDecimal, mask, ro, PrereqNone)
	set(EthSrc, "eth_src", 48, offEthSrc, 6, 0, FormatEthernet, mask, rw, PrereqNone)
	set(EthDst, "eth_dst", 48, offEthDst, 6, 0, FormatEthernet, mask, rw, PrereqNone)
	set(EthType, "eth_type", 16, offEthType, 2, 0, FormatHex, nomask, ro, PrereqNone)
	set(VLANTCI, "vlan_tci", 16, offVLANTCI, 2, 0, FormatHex, mask, rw, PrereqNone)
	set(IPv4Src, "ip_src", 32, offNwSrc, 4, 0, FormatIPv4, mask, rw, PrereqIPv4)
	set(IPv4Dst, "ip_dst", 32, offNwDst, 4, 0, FormatIPv4, mask, rw, PrereqIPv4)
	set(IPv6Src, "ipv6_src", 128, offIPv6Src, 16, 0, FormatIPv6, mask, rw, PrereqIPv6)
	set(IPv6Dst, "ipv6_dst", 128, offIPv6Dst, 16, 0, FormatIPv6, mask, rw, PrereqIPv6)
	set(IPv6Label, "ipv6_label", 20, offIPv6Label, 4, 0, FormatHex, mask, rw, PrereqIPv6)
	set(IPProto, "nw_proto", 8, offNwProto, 1, 0, FormatDecimal, nomask, ro, PrereqIP)
	set(IPDSCP, "ip_dscp", 6, offNwTos, 1, 2, FormatDecimal, nomask, rw, PrereqIP)
	set(IPECN, "nw_ecn", 2, offNwTos, 1, 0, FormatDecimal, nomask, rw, PrereqIP)
	set(IPTTL, "nw_ttl", 8, offNwTTL, 1, 0, FormatDecimal, nomask, rw, PrereqIP)
	set(IPFrag, "ip_frag", 2, offNwFrag, 1, 0, FormatFrag, mask, ro, PrereqIP)
	set(ARPOp, "arp_op", 16, offNwProto, 1, 0, FormatDecimal, nomask, rw, PrereqARP)
	set(ARPSPA, "arp_spa", 32, offNwSrc, 4, 0, FormatIPv4, mask, rw, PrereqARP)
	set(ARPTPA, "arp_tpa", 32, offNwDst, 4, 0, FormatIPv4, mask, rw, PrereqARP)
	set(ARPSHA, "arp_sha", 48, offARPSHA, 6, 0, FormatEthernet, mask, rw, PrereqARP)
	set(ARPTHA, "arp_tha", 48, offARPTHA, 6, 0, FormatEthernet, mask, rw, PrereqARP)
	set(NDTarget, "nd_target", 128, offNDTarget, 16, 0, FormatIPv6, mask, rw, PrereqND)
	set(NDSLL, "nd_sll", 48, offARPSHA, 6, 0, FormatEthernet, mask, rw, PrereqNDSolicit)
	set(NDTLL, "nd_tll", 48, offARPTHA, 6, 0, FormatEthernet, mask, rw, PrereqNDAdvert)
	set(TCPSrc, "tcp_src", 16, offTpSrc, 2, 0, FormatDecimal, mask, rw, PrereqTCP)
	set(TCPDst, "tcp_dst", 16, offTpDst, 2, 0, FormatDecimal, mask, rw, PrereqTCP)
	set(TCPFlags, "tcp_flags", 12, offTCPFlags, 2, 0, FormatTCPFlags, mask, ro, PrereqTCP)
	set(UDPSrc, "udp_src", 16, offTpSrc, 2, 0, FormatDecimal, mask, rw, PrereqUDP)
	set(UDPDst, "udp_dst", 16, offTpDst, 2, 0, FormatDecimal, mask, rw, PrereqUDP)
	set(SCTPSrc, "sctp_src", 16, offTpSrc, 2, 0, FormatDecimal, mask, rw, PrereqSCTP)
	set(SCTPDst, "sctp_dst", 16, offTpDst, 2, 0, FormatDecimal, mask, rw, PrereqSCTP)
	set(ICMPv4Type, "icmp_type", 8, offTpSrc, 2, 0, FormatDecimal, nomask, rw, PrereqICMPv4)
	set(ICMPv4Code, "icmp_code", 8, offTpDst, 2, 0, FormatDecimal, nomask, rw, PrereqICMPv4)
	set(ICMPv6Type, "icmpv6_type", 8, offTpSrc, 2, 0, FormatDecimal, nomask, rw, PrereqICMPv6)
	set(ICMPv6Code, "icmpv6_code", 8, offTpDst, 2, 0, FormatDecimal, nomask, rw, PrereqICMPv6)
	for i := 0; i < NumRegs; i++ {
		set(Reg(i), fmt.Sprintf("reg%d", i), 32, offRegs+4*i, 4, 0, FormatHex, mask, rw, PrereqNone)
	}
	for i := 0; i < NumRegs/2; i++ {
		set(XReg(i), fmt.Sprintf("xreg%d", i), 64, offRegs+8*i, 8, 0, FormatHex, mask, rw, PrereqNone)
	}
	for i := 0; i < NumRegs/4; i++ {
		set(XXReg(i), fmt.Sprintf("xxreg%d", i), 128, offRegs+16*i, 16, 0, FormatHex, mask, rw, PrereqNone)
	}
	return d
}

// Lookup returns the description of id.
func Lookup(id ID) *Desc { return &descs[id] }

// All returns the descriptions of every field, in ID order.
func All() []Desc { return descs }

// ByName returns the field with the given OpenFlow-style name.
func ByName(name string) (*Desc, bool) {
	for i := range descs {
		if descs[i].Name == name {
			return &descs[i], true
		}
	}
	return nil, false
}

// IsConntrack reports whether id is one of the conntrack fields (ct_state
// up to ct_tp_dst): what the last ct action said of the packet's
// connection, not a header of the packet.
func IsConntrack(id ID) bool { return id >= CTState && id <= CTTpDst }

// ClearConntrack zeroes k's conntrack fields, as ct_clear does.
func ClearConntrack(k *Key) {
	for id := CTState; id <= CTTpDst; id++ {
		k.Set(id, Value{})
	}
}

// IsRegister reports whether id is one of the general-purpose registers
// (reg, xreg, xxreg), whose changes are pipeline state, not packet changes.
func IsRegister(id ID) bool { return id >= Reg0 && id < numIDs }

func (id ID) String() string {
	if int(id) < len(descs) {
		return descs[id].Name
	}
	return fmt.Sprintf("field(%d)", uint16(id))
}
