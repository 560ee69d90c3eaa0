package ovn

import (
	"strings"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// This file holds the OVN actions that are not generic packet operations:
// they consult OVN state (port security, MAC bindings, FDB, load
// balancers) or compose new packets. Their Execute methods implement the
// logical semantics that ovn-trace implements, which is what the slow path
// must reproduce.

// envOf returns the OVN environment a packet runs in.
func envOf(c ir.ExecContext) *Env { return c.Env().(*Env) }

// noop is an action with no effect on the logical packet (set_queue,
// put_arp, trigger_event, ...): its effect is on the chassis, not the trace.
type noop struct{ name string }

func (noop) Execute(ir.ExecContext) {}

// multiStore sets several subfields: a masked constant load.
type multiStore struct {
	stores []*ir.SetField
	note   string
}

func (m multiStore) Execute(c ir.ExecContext) {
	if m.note != "" {
		c.Trace(trace.Modify, m.note)
	}
	for _, s := range m.stores {
		c.Write(s.Dst, s.Value)
	}
}

// ovnFieldLoad sets a field that only the controller can write
// (icmp4.frag_mtu): traced, applied when the packet is composed.
type ovnFieldLoad struct {
	name  string
	value uint64
}

func (o ovnFieldLoad) Execute(c ir.ExecContext) {
	c.Trace(trace.Modify, tracef(c, "%s = %d", o.name, o.value))
}

// compose builds a derived packet (an ARP request, an ICMP error, a TCP
// reset, a neighbour advertisement...) and runs body on it.
type compose struct {
	kind string
	body []ir.Action
}

func (o compose) Nested() [][]ir.Action { return [][]ir.Action{o.body} }

func (o compose) Execute(c ir.ExecContext) {
	orig := c.Key()
	k := *orig
	label := o.kind
	switch o.kind {
	case "arp":
		k.Set(field.IPFrag, field.Value{})
		k.Set(field.IPDSCP, field.Value{})
		k.Set(field.IPECN, field.Value{})
		k.Set(field.IPTTL, field.Value{})
		k.Set(field.TCPFlags, field.Value{})
		k.Set(field.EthType, field.U64(field.EthTypeARP))
		k.Set(field.ARPOp, field.U64(1))
		k.Set(field.ARPSHA, orig.Get(field.EthSrc))
		k.Set(field.ARPTHA, field.Value{})
	case "nd_na", "nd_na_router":
		label = "nd_na"
		k.Set(field.EthSrc, orig.Get(field.EthDst))
		k.Set(field.EthDst, orig.Get(field.EthSrc))
		k.Set(field.IPv6Dst, orig.Get(field.IPv6Src))
		k.Set(field.IPv6Src, orig.Get(field.NDTarget))
		k.Set(field.ICMPv6Type, field.U64(136))
		k.Set(field.NDSLL, field.Value{})
		k.Set(field.NDTLL, orig.Get(field.EthDst))
	case "nd_ns":
		dst := orig.Get(field.IPv6Dst)
		k.Set(field.EthDst, field.U64(0x3333ff000000|dst.Lo&0xffffff))
		k.Set(field.ICMPv6Type, field.U64(135))
		k.Set(field.NDSLL, field.Value{})
		k.Set(field.NDTLL, orig.Get(field.EthDst))
	case "icmp4", "icmp4_error":
		label = "icmp4"
		composeICMP(&k, orig, false, false)
	case "icmp6", "icmp6_error":
		label = "icmp6"
		composeICMP(&k, orig, true, false)
	case "tcp_reset":
		if !composeReset(&k, orig, field.ProtoTCP, false) {
			return
		}
	case "sctp_abort":
		if !composeReset(&k, orig, field.ProtoSCTP, false) {
			return
		}
	case "reject":
		proto := c.Read(field.Whole(field.IPProto)).Lo
		isV4 := c.Read(field.Whole(field.EthType)).Lo == field.EthTypeIPv4
		switch {
		case proto == field.ProtoTCP:
			label = "tcp_reset"
			if !composeReset(&k, orig, field.ProtoTCP, true) {
				return
			}
		case proto == field.ProtoSCTP:
			label = "sctp_abort"
			if !composeReset(&k, orig, field.ProtoSCTP, true) {
				return
			}
		default:
			label = "icmp4"
			if !isV4 {
				label = "icmp6"
			}
			if !composeICMP(&k, orig, !isV4, true) {
				return
			}
		}
	}
	c.WithKey(&k).Sub(trace.Transformation, label).Exec(o.body)
}

// composeICMP turns k into a destination-unreachable error about orig; with
// loopback it goes back to the sender. It returns false for an error about
// an error, which would loop.
func composeICMP(k, orig *field.Key, v6, loopback bool) bool {
	typ := uint64(3)
	if v6 {
		typ = 1
	}
	if loopback && orig.Get(field.TCPSrc).Lo == typ {
		return false
	}
	if loopback {
		swapAddrs(k, orig, v6)
	}
	proto := uint64(field.ProtoICMPv4)
	if v6 {
		proto = field.ProtoICMPv6
	}
	k.Set(field.IPProto, field.U64(proto))
	k.Set(field.IPTTL, field.U64(255))
	k.Set(field.TCPSrc, field.U64(typ))
	k.Set(field.TCPDst, field.U64(1))
	return true
}

// composeReset turns k into a TCP RST (or SCTP ABORT) for orig.
func composeReset(k, orig *field.Key, proto uint64, loopback bool) bool {
	if loopback && orig.Get(field.TCPFlags).Lo == 0x004 {
		return false
	}
	v6 := orig.Get(field.EthType).Lo != field.EthTypeIPv4
	if loopback {
		swapAddrs(k, orig, v6)
	}
	if proto == field.ProtoSCTP && v6 {
		proto = field.ProtoTCP // as ovn-trace does for SCTPv6
	}
	k.Set(field.IPProto, field.U64(proto))
	k.Set(field.IPTTL, field.U64(255))
	k.Set(field.TCPFlags, field.U64(0x004))
	return true
}

func swapAddrs(k, orig *field.Key, v6 bool) {
	k.Set(field.EthDst, orig.Get(field.EthSrc))
	k.Set(field.EthSrc, orig.Get(field.EthDst))
	src, dst := field.IPv4Src, field.IPv4Dst
	if v6 {
		src, dst = field.IPv6Src, field.IPv6Dst
	}
	k.Set(dst, orig.Get(src))
	k.Set(src, orig.Get(dst))
}

// ipKey returns an IP address as the 128-bit key MAC bindings use: IPv4
// addresses IPv4-mapped.
func ipKey(v field.Value, bits int) field.Value {
	if bits == 32 {
		return field.Value{Lo: 0xffff<<32 | v.Lo&0xffffffff}
	}
	return v
}

// getMACBind sets eth.dst to the MAC bound to (port, ip), or zero.
type getMACBind struct{ port, ip field.Subfield }

func (o getMACBind) Execute(c ir.ExecContext) {
	e := envOf(c)
	portKey := uint32(c.Read(o.port).Lo)
	ip := ipKey(c.Read(o.ip), o.ip.Bits)
	mac, ok := e.dp(c).macBindings[macBindingKey{port: portKey, ip: ip}]
	if ok {
		c.Trace(trace.Action, "/* MAC binding to "+field.FormatMAC(mac)+". */")
	} else {
		mac = field.Value{}
		c.Trace(trace.Action, "/* No MAC binding. */")
	}
	c.Write(field.Whole(field.EthDst), mac)
	c.Trace(trace.Modify, "eth.dst = "+field.FormatMAC(mac))
}

// lookupMACBind sets dst to 1 if (port, ip[, mac]) is a known binding.
type lookupMACBind struct {
	dst, port, ip, mac field.Subfield
	withMAC            bool
}

func (o lookupMACBind) Execute(c ir.ExecContext) {
	e := envOf(c)
	portKey := uint32(c.Read(o.port).Lo)
	ip := ipKey(c.Read(o.ip), o.ip.Bits)
	mac, ok := e.dp(c).macBindings[macBindingKey{port: portKey, ip: ip}]
	if ok && o.withMAC {
		ok = mac == c.Read(o.mac)
	}
	switch {
	case ok && o.withMAC:
		c.Trace(trace.Action, "/* MAC binding to "+field.FormatMAC(c.Key().Get(field.EthDst))+" found. */")
	case ok:
		c.Trace(trace.Action, "/* MAC binding found. */")
	default:
		c.Trace(trace.Action, "/* lookup failed - No MAC binding. */")
	}
	c.Write(o.dst, boolValue(ok))
}

func boolValue(b bool) field.Value {
	if b {
		return field.U64(1)
	}
	return field.Value{}
}

// lookupFDB sets dst to 1 if the FDB says mac lives on port.
type lookupFDB struct{ dst, port, mac field.Subfield }

func (o lookupFDB) Execute(c ir.ExecContext) {
	e := envOf(c)
	portKey := uint32(c.Read(o.port).Lo)
	p, ok := e.dp(c).fdb[c.Read(o.mac).Lo]
	ok = ok && p == portKey
	if ok {
		c.Trace(trace.Action, "/* MAC lookup for "+field.FormatMAC(c.Key().Get(field.EthDst))+" found in FDB. */")
	} else {
		c.Trace(trace.Action, "/* lookup mac failed in mac learning table. */")
	}
	c.Write(o.dst, boolValue(ok))
}

// getFDB sets dst to the port the FDB says mac lives on, or 0.
type getFDB struct{ dst, mac field.Subfield }

func (o getFDB) Execute(c ir.ExecContext) {
	p := envOf(c).dp(c).fdb[c.Read(o.mac).Lo]
	c.Write(o.dst, field.U64(uint64(p)))
}

// putFDB learns a MAC on a port; the chassis does it, a trace does not.
type putFDB struct{ port, mac field.Subfield }

func (putFDB) Execute(ir.ExecContext) {}

// optValue is one option of put_dhcp_opts and friends.
type optValue struct {
	opt genOpt
	set *constSet
}

func (o optValue) String() string {
	var b strings.Builder
	curlies := o.set.curlies || len(o.set.values) != 1
	if curlies {
		b.WriteByte('{')
	}
	for i, v := range o.set.values {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(constString(v, o.set.isString))
	}
	if curlies {
		b.WriteByte('}')
	}
	return o.opt.name + " = " + b.String()
}

// putOpts answers a DHCP request or router solicitation: the controller
// builds the reply; the logical flow sees dst set to 1.
type putOpts struct {
	fn      string
	opts    []optValue
	dst     field.Subfield
	dstName string
	dhcp    bool
}

func (o putOpts) Execute(c ir.ExecContext) {
	if o.dhcp {
		c.Trace(trace.Error, "/* We assume that this packet is DHCPDISCOVER or DHCPREQUEST. */")
	}
	parts := make([]string, len(o.opts))
	for i, v := range o.opts {
		parts[i] = v.String()
	}
	c.Trace(trace.Modify, o.fn+"("+strings.Join(parts, ", ")+")")
	if o.dstName != "" {
		c.Trace(trace.Modify, o.dstName+" = 1")
	}
	c.Write(o.dst, field.U64(1))
}

// dnsLookup would answer a DNS query from the chassis' DNS records.
type dnsLookup struct{ dst field.Subfield }

func (o dnsLookup) Execute(c ir.ExecContext) {
	c.Write(o.dst, field.Value{})
	c.Fail("*** dns_lookup action not implemented")
}

// logOp logs the packet (ACL logging).
type logOp struct {
	name, verdict, severity string
	ingress                 bool
}

func (o logOp) Execute(c ir.ExecContext) {
	name := o.name
	if name == "" {
		name = "<unnamed>"
	}
	dir := "OUT"
	if o.ingress {
		dir = "IN"
	}
	c.Trace(trace.Transformation, tracef(c, "LOG: ACL name=%s, direction=%s, verdict=%s, severity=%s, packet=\"%s\"",
		name, dir, o.verdict, o.severity, FormatFlow(c.Key())))
}

// selectOp chooses one of several group members and continues in the next
// table with dst set to its id.
type selectOp struct {
	dst   field.Subfield
	name  string
	ids   []uint16
	table int
}

func (o selectOp) Execute(c ir.ExecContext) {
	id, chosen := o.ids[0], false
	for _, x := range o.ids {
		if x == envOf(c).opts.SelectID {
			id, chosen = x, true
		}
	}
	k := *c.Key()
	k.SetSub(o.dst, field.U64(uint64(id)))
	note := ""
	if !chosen {
		note = " /* Randomly selected. Use --select-id to specify. */"
	}
	c.WithKey(&k).Sub(trace.Transformation, tracef(c, "select: %s = %d%s", o.name, id, note)).
		At(c.Pipeline(), o.table).Lookup()
}

// checkPortSec sets dst to 1 when the packet violates the port security
// of its input (in) or output port.
type checkPortSec struct {
	dst field.Subfield
	in  bool
}

func (o checkPortSec) Execute(c ir.ExecContext) {
	reg := regLogOutport
	if o.in {
		reg = regLogInport
	}
	key := uint32(c.Read(field.Whole(field.Reg(reg))).Lo)
	p := envOf(c).dp(c).portsByKey[key]
	if p == nil || len(p.portSecurity) == 0 {
		c.Write(o.dst, field.Value{})
		return
	}
	var allow bool
	if o.in {
		allow = inPortSecAllows(c, p.portSecurity)
	} else {
		allow = outPortSecAllows(c, p.portSecurity)
	}
	c.Write(o.dst, boolValue(!allow))
}

// chkLBHairpin sets dst to 1 when a load-balanced packet is going back to
// the client it came from.
type chkLBHairpin struct {
	dst   field.Subfield
	name  string
	reply bool
}

func (o chkLBHairpin) Execute(c ir.ExecContext) {
	res := uint64(0)
	if vip, ok := envOf(c).findVIP(c); ok {
		et := c.Read(field.Whole(field.EthType)).Lo
		if et == field.EthTypeIPv4 || et == field.EthTypeIPv6 {
			if c.Read(field.Whole(field.CTState)).Lo&field.CSDstNAT != 0 {
				src, dst := field.IPv4Src, field.IPv4Dst
				if et == field.EthTypeIPv6 {
					src, dst = field.IPv6Src, field.IPv6Dst
				}
				if c.Read(field.Whole(src)) == c.Read(field.Whole(dst)) {
					res = 1
				}
			}
			port := c.Read(field.Whole(field.CTTpDst)).Lo
			if o.reply {
				port = c.Read(field.Whole(field.TCPDst)).Lo
			}
			if uint64(vip.port) != port {
				res = 0
			}
		}
	}
	c.Write(o.dst, field.U64(res))
	c.Trace(trace.Modify, tracef(c, "%s = %d", o.name, res))
}

// ctSNATToVIP source-NATs hairpinned load-balancer traffic to the VIP.
// In a datapath's run it is what ovn-controller's hairpin SNAT table does
// for the VIP: a commit in the SNAT zone with the source translated to it.
type ctSNATToVIP struct{}

func (ctSNATToVIP) Execute(c ir.ExecContext) {
	e := envOf(c)
	vip, ok := e.findVIP(c)
	if !ok {
		return
	}
	if vip.port != uint16(c.Read(field.Whole(field.CTTpDst)).Lo) {
		return
	}
	if e.datapath {
		c.Exec([]ir.Action{&ir.CT{Src: "ct_snat_to_vip", Zone: zoneReg(regLogSNATZone), Commit: true,
			NAT: &ir.NAT{Kind: ir.NATSrc, IPv6: vip.ipv6, Addr: vip.addr, AddrSet: true}, Flavor: "ct_snat_to_vip"}})
		return
	}
	c.Trace(trace.Action, "/* nat(src="+vip.addrText+") */")
}
