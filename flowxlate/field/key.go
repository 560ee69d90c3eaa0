package field

import (
	"fmt"
	"net/netip"
	"strings"
)

// Key holds a value for every field: one packet's headers plus its pipeline
// metadata. The zero Key is a packet with every field 0.
type Key [KeyLen]byte

// Mask has a Key's layout; a 1 bit says the corresponding Key bit matters.
type Mask = Key

// Subfield is bits Ofs..Ofs+Bits-1 of a field.
type Subfield struct {
	Field ID
	Ofs   int
	Bits  int
}

// Whole returns the subfield that covers all of field id.
func Whole(id ID) Subfield { return Subfield{Field: id, Bits: descs[id].Bits} }

// IsWhole reports whether s covers its entire field.
func (s Subfield) IsWhole() bool { return s.Ofs == 0 && s.Bits == descs[s.Field].Bits }

func (s Subfield) String() string {
	if s.IsWhole() {
		return s.Field.String()
	}
	if s.Bits == 1 {
		return fmt.Sprintf("%s[%d]", s.Field, s.Ofs)
	}
	return fmt.Sprintf("%s[%d..%d]", s.Field, s.Ofs, s.Ofs+s.Bits-1)
}

func (k *Key) storage(d *Desc) Value { return FromBytes(k[d.Off : d.Off+d.Size]) }

// Get returns the value of field id.
func (k *Key) Get(id ID) Value {
	d := &descs[id]
	return k.storage(d).Shr(d.Shift).And(Ones(d.Bits))
}

// Set stores v (truncated to the field's width) into field id.
func (k *Key) Set(id ID, v Value) { k.SetMasked(id, v, Ones(descs[id].Bits)) }

// SetMasked stores the bits of v selected by mask into field id.
func (k *Key) SetMasked(id ID, v, mask Value) {
	d := &descs[id]
	mask = mask.And(Ones(d.Bits)).Shl(d.Shift)
	st := k.storage(d).AndNot(mask).Or(v.Shl(d.Shift).And(mask))
	st.PutBytes(k[d.Off : d.Off+d.Size])
}

// GetSub returns the value of subfield s, right-aligned.
func (k *Key) GetSub(s Subfield) Value {
	return k.Get(s.Field).Shr(s.Ofs).And(Ones(s.Bits))
}

// SetSub stores v (right-aligned) into subfield s.
func (k *Key) SetSub(s Subfield, v Value) {
	k.SetMasked(s.Field, v.Shl(s.Ofs), Range(s.Ofs, s.Bits))
}

// AddField sets in mask the storage bits of field id selected by bits.
// Called on a Mask, it records that those bits were read.
func (k *Key) AddField(id ID, bits Value) {
	d := &descs[id]
	m := bits.And(Ones(d.Bits)).Shl(d.Shift)
	st := k.storage(d).Or(m)
	st.PutBytes(k[d.Off : d.Off+d.Size])
}

// Or sets in k every bit set in other.
func (k *Key) Or(other *Key) {
	for i := range k {
		k[i] |= other[i]
	}
}

// And clears in k every bit clear in other.
func (k *Key) And(other *Key) {
	for i := range k {
		k[i] &= other[i]
	}
}

// Protocol values used by prerequisite checks.
const (
	EthTypeIPv4 = 0x0800
	EthTypeARP  = 0x0806
	EthTypeRARP = 0x8035
	EthTypeIPv6 = 0x86dd
	EthTypeVLAN = 0x8100

	ProtoICMPv4 = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoSCTP   = 132
)

// PrereqFields returns the fields that PrereqOK(p) reads.
func PrereqFields(p Prereq) []ID {
	switch p {
	case PrereqNone:
		return nil
	case PrereqVLAN:
		return []ID{VLANTCI}
	case PrereqARP, PrereqIPv4, PrereqIPv6, PrereqIP:
		return []ID{EthType}
	case PrereqTCP, PrereqUDP, PrereqSCTP, PrereqICMPv4, PrereqICMPv6:
		return []ID{EthType, IPProto}
	default:
		return []ID{EthType, IPProto, ICMPv6Type, ICMPv6Code}
	}
}

// PrereqOK reports whether the packet in k carries the protocol p requires.
func (k *Key) PrereqOK(p Prereq) bool {
	et := k.Get(EthType).Lo
	isIP := et == EthTypeIPv4 || et == EthTypeIPv6
	proto := k.Get(IPProto).Lo
	switch p {
	case PrereqNone:
		return true
	case PrereqVLAN:
		return k.Get(VLANTCI).Lo&0x1000 != 0
	case PrereqARP:
		return et == EthTypeARP || et == EthTypeRARP
	case PrereqIPv4:
		return et == EthTypeIPv4
	case PrereqIPv6:
		return et == EthTypeIPv6
	case PrereqIP:
		return isIP
	case PrereqTCP:
		return isIP && proto == ProtoTCP
	case PrereqUDP:
		return isIP && proto == ProtoUDP
	case PrereqSCTP:
		return isIP && proto == ProtoSCTP
	case PrereqICMPv4:
		return et == EthTypeIPv4 && proto == ProtoICMPv4
	case PrereqICMPv6:
		return et == EthTypeIPv6 && proto == ProtoICMPv6
	}
	if et != EthTypeIPv6 || proto != ProtoICMPv6 || k.Get(ICMPv6Code).Lo != 0 {
		return false
	}
	t := k.Get(ICMPv6Type).Lo
	switch p {
	case PrereqND:
		return t == 135 || t == 136
	case PrereqNDSolicit:
		return t == 135
	case PrereqNDAdvert:
		return t == 136
	}
	return false
}

// FormatValue shows v as field id's values are shown.
func FormatValue(id ID, v Value) string {
	switch descs[id].Format {
	case FormatDecimal:
		if v.Hi == 0 {
			return fmt.Sprintf("%d", v.Lo)
		}
		return v.Hex()
	case FormatEthernet:
		return FormatMAC(v)
	case FormatIPv4:
		return FormatIPv4Addr(v)
	case FormatIPv6:
		return FormatIPv6Addr(v)
	case FormatCTState:
		return FormatCTStateFlags(uint32(v.Lo), "|")
	case FormatFrag:
		switch v.Lo & 3 {
		case 0:
			return "no"
		case 1:
			return "first"
		default:
			return "later"
		}
	default:
		return v.Hex()
	}
}

// FormatMAC formats the low 48 bits of v as an Ethernet address.
func FormatMAC(v Value) string {
	b := v.Bytes(6)
	return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5])
}

// FormatIPv4Addr formats the low 32 bits of v as a dotted quad.
func FormatIPv4Addr(v Value) string {
	b := v.Bytes(4)
	return fmt.Sprintf("%d.%d.%d.%d", b[0], b[1], b[2], b[3])
}

// FormatIPv6Addr formats v as an IPv6 address.
func FormatIPv6Addr(v Value) string {
	var a [16]byte
	v.PutBytes(a[:])
	return netip.AddrFrom16(a).String()
}

// Connection tracking state bits, as OVS numbers them.
const (
	CSNew     = 1 << 0
	CSEst     = 1 << 1
	CSRel     = 1 << 2
	CSRpl     = 1 << 3
	CSInv     = 1 << 4
	CSTrk     = 1 << 5
	CSSrcNAT  = 1 << 6
	CSDstNAT  = 1 << 7
	csNumBits = 8
)

var ctStateNames = [csNumBits]string{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"}

// CTStateBit returns the bit of the named conntrack state flag, or 0.
func CTStateBit(name string) uint32 {
	for i, n := range ctStateNames {
		if n == name {
			return 1 << i
		}
	}
	return 0
}

// FormatCTStateFlags lists the flags set in state, lowest bit first,
// joined by sep ("est|trk").
func FormatCTStateFlags(state uint32, sep string) string {
	var names []string
	for i, n := range ctStateNames {
		if state&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if rest := state &^ (1<<csNumBits - 1); rest != 0 {
		names = append(names, fmt.Sprintf("0x%x", rest))
	}
	if len(names) == 0 {
		return "0"
	}
	return strings.Join(names, sep)
}
