package upcall

import "encoding/binary"

// A sender on the same host (a VM behind a veth) leaves the TCP or UDP
// checksum to "hardware": the packet travels with CHECKSUM_PARTIAL and the
// checksum field holds only the pseudo-header's sum. The fast path keeps
// that state, so the receiver never checks; but a packet that went through
// user space is a fresh buffer whose checksum the receiver does check. As
// the openvswitch module completes the checksum before an upcall, the slow
// path completes it before delivering: when the field holds exactly the
// pseudo-header sum it is replaced with the full checksum. A checksum that
// is simply wrong stays wrong, as the fast path would leave it.

// completeChecksum fixes frame's TCP or UDP checksum in place if it is a
// partial (pseudo-header only) one, and reports whether it did.
func completeChecksum(frame []byte) bool {
	if len(frame) < 14 {
		return false
	}
	off := 14
	typ := binary.BigEndian.Uint16(frame[12:])
	if typ == 0x8100 && len(frame) >= 18 {
		typ, off = binary.BigEndian.Uint16(frame[16:]), 18
	}
	var pseudo uint32
	var l4 []byte
	var proto byte
	switch typ {
	case 0x0800:
		ip := frame[off:]
		if len(ip) < 20 {
			return false
		}
		ihl := int(ip[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(ip[2:]))
		if ihl < 20 || total < ihl || total > len(ip) || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
			return false // malformed, or a fragment: no whole L4 segment here
		}
		proto, l4 = ip[9], ip[ihl:total]
		pseudo = sum16(0, ip[12:20])
	case 0x86dd:
		ip := frame[off:]
		if len(ip) < 40 {
			return false
		}
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		if 40+plen > len(ip) {
			return false
		}
		proto, l4 = ip[6], ip[40:40+plen] // extension headers: not handled
		pseudo = sum16(0, ip[8:40])
	default:
		return false
	}
	var at int
	switch proto {
	case 6:
		at = 16
	case 17:
		at = 6
	default:
		return false
	}
	if len(l4) < at+2 {
		return false
	}
	pseudo += uint32(proto) + uint32(len(l4))
	field := binary.BigEndian.Uint16(l4[at:])
	if field != fold(pseudo) {
		return false // complete already, or wrong: not ours to change
	}
	binary.BigEndian.PutUint16(l4[at:], 0)
	c := ^fold(sum16(pseudo, l4))
	if c == 0 && proto == 17 {
		c = 0xffff // UDP sends a computed zero as all ones
	}
	binary.BigEndian.PutUint16(l4[at:], c)
	return true
}

func sum16(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}
