package upcall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// The datapath's key and flowxlate's field set describe the same headers
// in two layouts. Header fields are big-endian in both, so most convert by
// copying bytes; the datapath's metadata (in_port, ct_zone, ct_mark) is in
// host order. ARP's hardware addresses live in the narrow key's L4 and
// conntrack bytes, which ARP packets lack, so what those bytes mean depends
// on the packet's Ethernet type.

// byteMap places a flowxlate field's storage in the narrow key.
type byteMap struct {
	id  field.ID
	off int // in the narrow key
}

// Where the narrow key (struct ovsbpf_narrow) keeps each field, from the
// generated layout, never a number kept by hand.
const (
	offEthDst   = int(unsafe.Offsetof(datapath.Key{}.EthDst))
	offEthSrc   = int(unsafe.Offsetof(datapath.Key{}.EthSrc))
	offEthType  = int(unsafe.Offsetof(datapath.Key{}.EthType))
	offVLANTCI  = int(unsafe.Offsetof(datapath.Key{}.VlanTci))
	offNwSrc    = int(unsafe.Offsetof(datapath.Key{}.NwSrc))
	offNwDst    = int(unsafe.Offsetof(datapath.Key{}.NwDst))
	offNwProto  = int(unsafe.Offsetof(datapath.Key{}.NwProto))
	offNwTTL    = int(unsafe.Offsetof(datapath.Key{}.NwTtl))
	offNwFrag   = int(unsafe.Offsetof(datapath.Key{}.NwFrag))
	offNwTos    = int(unsafe.Offsetof(datapath.Key{}.NwTos))
	offTpSrc    = int(unsafe.Offsetof(datapath.Key{}.TpSrc))
	offTpDst    = int(unsafe.Offsetof(datapath.Key{}.TpDst))
	offTCPFlags = int(unsafe.Offsetof(datapath.Key{}.TcpFlags))
	offCTZone   = int(unsafe.Offsetof(datapath.Key{}.CtZone))
	offRecircID = int(unsafe.Offsetof(datapath.Key{}.RecircId))
)

// Header fields stored alike in both layouts.
var commonNarrow = []byteMap{
	{field.EthDst, offEthDst}, {field.EthSrc, offEthSrc}, {field.EthType, offEthType}, {field.VLANTCI, offVLANTCI},
	{field.IPv4Src, offNwSrc}, {field.IPv4Dst, offNwDst}, {field.IPProto, offNwProto}, {field.IPTTL, offNwTTL},
	{field.IPFrag, offNwFrag}, {field.IPDSCP, offNwTos}, // ip_dscp's storage is the whole TOS byte
}

// Fields in the narrow key's L4 bytes when the packet is not ARP.
var l4Narrow = []byteMap{{field.TCPSrc, offTpSrc}, {field.TCPDst, offTpDst}, {field.TCPFlags, offTCPFlags}}

// ...and when it is: sha overlays tp_src..tcp_flags and tha ct_zone and
// ct_mark, as the parser copies them (datapath's TestLayoutMatchesBTF
// checks that both runs are six contiguous bytes).
var arpNarrow = []byteMap{{field.ARPSHA, offTpSrc}, {field.ARPTHA, offCTZone}}

const ethTypeARP = 0x0806

func storage(k *field.Key, id field.ID) []byte {
	d := field.Lookup(id)
	return k[d.Off : d.Off+d.Size]
}

// PacketFields returns the flowxlate key of a packet the datapath parsed:
// its headers, in_port (the datapath port) and conntrack fields, with
// registers and metadata zero.
func PacketFields(pk *datapath.PacketKey) field.Key {
	var k field.Key
	n := datapath.Key(pk.N)
	nb := n.Bytes()
	k.Set(field.InPort, field.U64(uint64(n.InPort)))
	for _, m := range commonNarrow {
		s := storage(&k, m.id)
		copy(s, nb[m.off:m.off+len(s)])
	}
	k.Set(field.CTState, field.U64(uint64(n.CtState)))
	if n.EtherType() == ethTypeARP {
		for _, m := range arpNarrow {
			copy(storage(&k, m.id), nb[m.off:])
		}
	} else {
		for _, m := range l4Narrow {
			s := storage(&k, m.id)
			copy(s, nb[m.off:m.off+len(s)])
		}
		k.Set(field.CTZone, field.U64(uint64(n.CtZone)))
		k.Set(field.CTMark, field.U64(uint64(n.CtMark)))
	}
	w := &pk.W
	copy(storage(&k, field.IPv6Src), w.Ipv6Src[:])
	copy(storage(&k, field.IPv6Dst), w.Ipv6Dst[:])
	binary.BigEndian.PutUint32(storage(&k, field.IPv6Label), beToHost32(w.Ipv6Label))
	copy(storage(&k, field.NDTarget), w.NdTarget[:])
	if n.EtherType() != ethTypeARP {
		// nd_sll and nd_tll share arp_sha's and arp_tha's storage.
		copy(storage(&k, field.NDSLL), w.NdSll[:])
		copy(storage(&k, field.NDTLL), w.NdTll[:])
	}
	copy(storage(&k, field.CTLabel), w.CtLabel[:])
	binary.BigEndian.PutUint64(storage(&k, field.TunID), beToHost64(w.TunId))
	return k
}

// beToHost32 turns a __be32 the generated Go struct read as little-endian
// into its value.
func beToHost32(v uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return binary.BigEndian.Uint32(b[:])
}

func beToHost64(v uint64) uint64 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	return binary.BigEndian.Uint64(b[:])
}

// ErrUncacheable says a decision cannot become a megaflow: the packet
// is still delivered, by the slow path, but each such packet comes up.
var ErrUncacheable = errors.New("cannot be cached")

// pipelineState is what the megaflow need not match: registers and
// metadata start at zero on every packet, so a pipeline that read them read
// its own writes, which follow from bits the mask already has.
func pipelineState(id field.ID) bool {
	return field.IsRegister(id) || id == field.Metadata
}

// MegaflowMask turns the bits a pipeline read (mask) while deciding on the
// packet pk into a datapath mask. in_port and recirc_id are always exact.
// It fails with ErrUncacheable when the pipeline read a field the narrow
// key does not hold (IPv6 addresses, neighbour discovery, ct_label, the
// tunnel id, the original-direction conntrack tuple, pkt_mark).
func MegaflowMask(mask *field.Mask, pk *datapath.PacketKey) (datapath.Mask, error) {
	var m datapath.Mask
	m.InPort, m.RecircId = 0xffff, 0xffffffff
	mb := maskBytes(&m)
	narrow := pk.Narrow()
	isARP := narrow.EtherType() == ethTypeARP

	copyMask := func(maps []byteMap) {
		for _, bm := range maps {
			for i, b := range storage(mask, bm.id) {
				mb[bm.off+i] |= b
			}
		}
	}
	copyMask(commonNarrow)
	if isARP {
		copyMask(arpNarrow)
	} else {
		copyMask(l4Narrow)
		if v := mask.Get(field.CTZone); !v.IsZero() {
			m.CtZone = uint16(v.Lo)
		}
		if v := mask.Get(field.CTMark); !v.IsZero() {
			m.CtMark = uint32(v.Lo)
		}
	}
	if v := mask.Get(field.CTState); !v.IsZero() {
		if v.Lo > 0xff {
			return m, fmt.Errorf("ct_state bits %s: %w", v, ErrUncacheable)
		}
		m.CtState = uint8(v.Lo)
	}

	// Anything else the pipeline read that is not its own state makes
	// the decision uncacheable.
	outside := &uncoveredNonARP
	if isARP {
		outside = &uncoveredARP
	}
	for i := range mask {
		if mask[i]&outside[i] != 0 {
			return m, fmt.Errorf("the pipeline read %s, which the datapath's narrow key lacks: %w", fieldAt(i), ErrUncacheable)
		}
	}

	// The narrow key's bytes mean different things for different
	// packets: whoever matches on them must also match on what says
	// what they are.
	// From nw_src to ct_mark, and nw_tos (at the key's head), eth_type
	// says what a byte is; recirc_id, after them, means the same for all.
	if !allZero(mb[offNwSrc:offRecircID]) || m.NwTos != 0 {
		m.EthType = 0xffff
	}
	if !allZero(mb[offTpSrc:offCTZone]) && !isARP { // the ports and TCP flags
		m.NwProto = 0xff
		m.NwFrag = 0xff // later fragments have no L4 header
	}
	return m, nil
}

// uncoveredARP and uncoveredNonARP have every bit of the flowxlate key set
// that a megaflow for an ARP or another packet cannot match on: the storage
// of each field neither in the narrow key nor pipeline state. Fields sharing
// storage with one the narrow key holds (ip_ecn with ip_dscp, udp_dst with
// tcp_dst) are covered by it. Checking a pipeline's mask against them is
// one pass over the key, cheap enough for every upcall.
var uncoveredARP, uncoveredNonARP = uncovered(true), uncovered(false)

func uncovered(isARP bool) field.Mask {
	covered := []field.ID{field.InPort, field.CTState}
	for _, bm := range commonNarrow {
		covered = append(covered, bm.id)
	}
	if isARP {
		for _, bm := range arpNarrow {
			covered = append(covered, bm.id)
		}
	} else {
		for _, bm := range l4Narrow {
			covered = append(covered, bm.id)
		}
		covered = append(covered, field.CTZone, field.CTMark)
	}
	var in field.Mask // storage the covered fields hold
	for _, id := range covered {
		d := field.Lookup(id)
		for i := d.Off; i < d.Off+d.Size; i++ {
			in[i] = 0xff
		}
	}
	var out field.Mask
	for _, d := range field.All() {
		if pipelineState(d.ID) || in[d.Off] != 0 {
			continue
		}
		for i := d.Off; i < d.Off+d.Size; i++ {
			out[i] = 0xff
		}
	}
	return out
}

// fieldAt names the fields whose storage holds byte i of the key (several
// share some: arp_sha with nd_sll).
func fieldAt(i int) string {
	var names []string
	for _, d := range field.All() {
		if !pipelineState(d.ID) && i >= d.Off && i < d.Off+d.Size {
			names = append(names, d.Name)
		}
	}
	if len(names) == 0 {
		return fmt.Sprintf("byte %d of the key", i)
	}
	return strings.Join(names, " or ")
}

func maskBytes(m *datapath.Mask) []byte { return m.Raw()[:] }

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
