package ovn

import (
	"net/netip"
	"strings"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// lportAddrs is one entry of a port's addresses or port_security column:
// a MAC and the IP addresses allowed with it.
type lportAddrs struct {
	mac  field.Value
	ipv4 []field.Value
	ipv6 []field.Value
}

// parseLportAddrs parses "MAC [IP[/PLEN]]..." as OVN does for
// Port_Binding.port_security. It reports false when there is no MAC.
func parseLportAddrs(s string) (lportAddrs, bool) {
	words := strings.Fields(s)
	if len(words) == 0 || len(words[0]) != 17 || !isMAC(words[0]) {
		return lportAddrs{}, false
	}
	a := lportAddrs{mac: parseMAC(words[0])}
	for _, w := range words[1:] {
		addr := w
		if i := strings.IndexByte(w, '/'); i >= 0 {
			addr = w[:i]
		}
		ip, err := netip.ParseAddr(addr)
		if err != nil {
			continue
		}
		if ip.Is4() {
			b := ip.As4()
			a.ipv4 = append(a.ipv4, field.FromBytes(b[:]))
		} else {
			b := ip.As16()
			a.ipv6 = append(a.ipv6, field.FromBytes(b[:]))
		}
	}
	return a, true
}

// linkLocal returns the EUI-64 IPv6 link-local address of mac.
func linkLocal(mac field.Value) field.Value {
	m := mac.Bytes(6)
	iid := uint64(m[0]^0x02)<<56 | uint64(m[1])<<48 | uint64(m[2])<<40 | 0xff<<32 | 0xfe<<24 |
		uint64(m[3])<<16 | uint64(m[4])<<8 | uint64(m[5])
	return field.Value{Hi: 0xfe80 << 48, Lo: iid}
}

func containsValue(list []field.Value, v field.Value) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func read(c ir.ExecContext, id field.ID) field.Value { return c.Read(field.Whole(id)) }

// inPortSecAllows reports whether the packet may enter through a port with
// the given port security.
func inPortSecAllows(c ir.ExecContext, ps []lportAddrs) bool {
	src := read(c, field.EthSrc)
	for _, a := range ps {
		if src != a.mac {
			continue
		}
		switch read(c, field.EthType).Lo {
		case field.EthTypeIPv4:
			return inIPv4Allowed(c, a)
		case field.EthTypeARP:
			if read(c, field.ARPSHA) != a.mac {
				return false
			}
			return len(a.ipv4) == 0 || containsValue(a.ipv4, read(c, field.ARPSPA))
		case field.EthTypeIPv6:
			return inIPv6Allowed(c, a)
		}
		return true
	}
	return false
}

func inIPv4Allowed(c ir.ExecContext, a lportAddrs) bool {
	if len(a.ipv4) == 0 && len(a.ipv6) == 0 {
		return true
	}
	if containsValue(a.ipv4, read(c, field.IPv4Src)) {
		return true
	}
	// DHCP discovery from 0.0.0.0 to the broadcast address.
	return read(c, field.IPProto).Lo == field.ProtoUDP && read(c, field.TCPSrc).Lo == 68 &&
		read(c, field.TCPDst).Lo == 67 && read(c, field.IPv4Src).IsZero() &&
		read(c, field.IPv4Dst).Lo == 0xffffffff
}

func inIPv6Allowed(c ir.ExecContext, a lportAddrs) bool {
	if len(a.ipv4) == 0 && len(a.ipv6) == 0 {
		return true
	}
	lla := linkLocal(a.mac)
	src := read(c, field.IPv6Src)
	if !containsValue(a.ipv6, src) && src != lla {
		return false
	}
	if read(c, field.IPProto).Lo != field.ProtoICMPv6 {
		return true
	}
	switch read(c, field.TCPSrc).Lo {
	case 135:
		if sll := read(c, field.ARPSHA); !sll.IsZero() && sll != a.mac {
			return false
		}
	case 136:
		if tll := read(c, field.ARPTHA); !tll.IsZero() && tll != a.mac {
			return false
		}
		if len(a.ipv6) > 0 {
			t := read(c, field.NDTarget)
			if !containsValue(a.ipv6, t) && t != lla {
				return false
			}
		}
	}
	return true
}

// outPortSecAllows reports whether the packet may leave through a port with
// the given port security.
func outPortSecAllows(c ir.ExecContext, ps []lportAddrs) bool {
	dst := read(c, field.EthDst)
	for _, a := range ps {
		if dst != a.mac {
			continue
		}
		switch read(c, field.EthType).Lo {
		case field.EthTypeIPv4:
			return outIPv4Allowed(c, a)
		case field.EthTypeIPv6:
			return outIPv6Allowed(c, a)
		}
		return true
	}
	return false
}

func outIPv4Allowed(c ir.ExecContext, a lportAddrs) bool {
	if len(a.ipv4) == 0 && len(a.ipv6) == 0 {
		return true
	}
	if len(a.ipv4) == 0 {
		return false
	}
	d := read(c, field.IPv4Dst)
	return containsValue(a.ipv4, d) || d.Lo == 0xffffffff || d.Lo>>28 == 0xe
}

func outIPv6Allowed(c ir.ExecContext, a lportAddrs) bool {
	if len(a.ipv4) == 0 && len(a.ipv6) == 0 {
		return true
	}
	if len(a.ipv6) == 0 {
		return false
	}
	d := read(c, field.IPv6Dst)
	return containsValue(a.ipv6, d) || d == linkLocal(a.mac) || d.Hi>>56 == 0xff
}
