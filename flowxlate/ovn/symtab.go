package ovn

import (
	"fmt"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// level says what a field may be compared with (ovn-sb(5) "Level of
// Measurement"): nominal fields only for equality, ordinal ones also with
// masks, ranges and subfields; boolean is the level of a predicate built from
// ordinal comparisons.
type level uint8

const (
	levelNominal level = iota
	levelBoolean
	levelOrdinal
)

func (l level) String() string {
	return [...]string{"nominal", "Boolean", "ordinal"}[l]
}

// writeScope says where a field may be assigned: anywhere, or only inside
// ct_commit { ... }.
type writeScope uint8

const (
	scopeDefault  writeScope = 1 << iota
	scopeCTCommit            // ct_mark and ct_label
	scopeAll      = scopeDefault | scopeCTCommit
)

// OVN logical fields that live in registers (ovn-architecture(7)).
const (
	regLogFlags    = 10 // flags
	regLogDNATZone = 11
	regLogSNATZone = 12
	regLogCTZone   = 13
	regLogInport   = 14
	regLogOutport  = 15

	numLogRegs = 10 // reg0..reg9 are the logical flows' own registers
)

// Bits of the flags register.
const (
	flagAllowLoopback = 0
	flagForceSNATDNAT = 2
	flagForceSNATLB   = 3
	flagSkipSNATLB    = 9
	flagUseSNATZone   = 11
)

// symbol is a name the match and action languages know: a field, a
// subfield of another symbol, a predicate (a named expression), a string
// field (logical port names) or an OVN-only field.
type symbol struct {
	name      string
	width     int // bits; 0 for string fields
	level     level
	prereqs   string // expression that must hold where the symbol is used
	rw        writeScope
	field     field.ID // for fields and string fields
	hasField  bool
	parent    *symbol // for subfields
	parentOfs int
	predicate string // for predicates
	ovnField  bool   // icmp4.frag_mtu, icmp6.frag_mtu: set only, by controller action
}

// symtab maps names to symbols. One is built per Translator; it is
// read-only after construction.
type symtab map[string]*symbol

func (st symtab) addField(name string, id field.ID, prereqs string, scope writeScope) *symbol {
	d := field.Lookup(id)
	s := &symbol{name: name, width: d.Bits, prereqs: prereqs, field: id, hasField: true, level: levelNominal}
	if d.Maskable {
		s.level = levelOrdinal
	}
	if d.Writable {
		s.rw = scope
	}
	st[name] = s
	return s
}

func (st symtab) addString(name string, id field.ID) {
	st[name] = &symbol{name: name, field: id, hasField: true, level: levelNominal, rw: scopeDefault}
}

// addSubfield defines name as bits lo..hi of parent.
func (st symtab) addSubfield(name, prereqs, parent string, lo, hi int, scope writeScope) {
	p := st[parent]
	if p == nil {
		panic(fmt.Sprintf("ovn symtab: subfield %s of unknown %s", name, parent))
	}
	s := &symbol{name: name, width: hi - lo + 1, prereqs: prereqs, parent: p, parentOfs: lo, level: p.level}
	if p.rw != 0 {
		s.rw = scope
	}
	st[name] = s
}

func (st symtab) addPredicate(name, expansion string) {
	s := &symbol{name: name, width: 1, predicate: expansion}
	e, err := parseExprString(expansion, st, nil, nil, 0)
	if err != nil {
		panic(fmt.Sprintf("ovn symtab: predicate %s: %v", name, err))
	}
	s.level = e.level()
	st[name] = s
}

// newSymtab builds the symbol table of OVN's logical flow language.
func newSymtab() symtab {
	st := symtab{}
	st.addString("inport", field.Reg(regLogInport))
	st.addString("outport", field.Reg(regLogOutport))

	// Registers: xxreg0..1 are fields; xreg0..3 and reg0..7 are their
	// subfields; xreg4 and reg8, reg9 are subfields of xreg4.
	for i := 0; i < numLogRegs/4; i++ {
		st.addField(fmt.Sprintf("xxreg%d", i), field.XXReg(i), "", scopeDefault)
	}
	for i := 0; i < numLogRegs/2; i++ {
		name := fmt.Sprintf("xreg%d", i)
		if xx := i / 2; xx < numLogRegs/4 {
			lo := 64 * (1 - i%2)
			st.addSubfield(name, "", fmt.Sprintf("xxreg%d", xx), lo, lo+63, scopeDefault)
		} else {
			st.addField(name, field.XReg(i), "", scopeDefault)
		}
	}
	for i := 0; i < numLogRegs; i++ {
		name := fmt.Sprintf("reg%d", i)
		if xx := i / 4; xx < numLogRegs/4 {
			lo := 32 * (3 - i%4)
			st.addSubfield(name, "", fmt.Sprintf("xxreg%d", xx), lo, lo+31, scopeDefault)
		} else if x := i / 2; x < numLogRegs/2 {
			lo := 32 * (1 - i%2)
			st.addSubfield(name, "", fmt.Sprintf("xreg%d", x), lo, lo+31, scopeDefault)
		} else {
			st.addField(name, field.Reg(i), "", scopeDefault)
		}
	}

	st.addField("flags", field.Reg(regLogFlags), "", scopeDefault)
	st.addSubfield("flags.loopback", "", "flags", flagAllowLoopback, flagAllowLoopback, scopeDefault)
	st.addSubfield("flags.force_snat_for_dnat", "", "flags", flagForceSNATDNAT, flagForceSNATDNAT, scopeDefault)
	st.addSubfield("flags.force_snat_for_lb", "", "flags", flagForceSNATLB, flagForceSNATLB, scopeDefault)
	st.addSubfield("flags.skip_snat_for_lb", "", "flags", flagSkipSNATLB, flagSkipSNATLB, scopeDefault)
	st.addSubfield("flags.use_snat_zone", "", "flags", flagUseSNATZone, flagUseSNATZone, scopeDefault)

	st.addField("ct_mark", field.CTMark, "", scopeCTCommit)
	st.addSubfield("ct_mark.blocked", "", "ct_mark", 0, 0, scopeCTCommit)
	st.addSubfield("ct_mark.natted", "", "ct_mark", 1, 1, scopeCTCommit)
	st.addSubfield("ct_mark.ecmp_reply_port", "", "ct_mark", 16, 31, scopeCTCommit)
	st.addSubfield("ct_mark.skip_snat", "", "ct_mark", 2, 2, scopeCTCommit)
	st.addSubfield("ct_mark.force_snat", "", "ct_mark", 3, 3, scopeCTCommit)
	st.addField("ct_label", field.CTLabel, "", scopeCTCommit)
	st.addSubfield("ct_label.blocked", "", "ct_label", 0, 0, scopeCTCommit)
	st.addSubfield("ct_label.natted", "", "ct_label", 1, 1, scopeCTCommit)
	st.addSubfield("ct_label.ecmp_reply_eth", "", "ct_label", 32, 79, scopeCTCommit)
	st.addSubfield("ct_label.ecmp_reply_port", "", "ct_label", 80, 95, scopeCTCommit)
	st.addSubfield("ct_label.label", "", "ct_label", 96, 127, scopeCTCommit)
	st.addSubfield("ct_label.skip_snat", "", "ct_label", 2, 2, scopeCTCommit)
	st.addSubfield("ct_label.force_snat", "", "ct_label", 3, 3, scopeCTCommit)

	st.addField("ct_state", field.CTState, "", scopeDefault)
	for i, n := range []string{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"} {
		pre := "ct.trk"
		if n == "trk" {
			pre = ""
		}
		st.addSubfield("ct."+n, pre, "ct_state", i, i, scopeDefault)
	}

	st.addField("eth.src", field.EthSrc, "", scopeDefault)
	st.addField("eth.dst", field.EthDst, "", scopeDefault)
	st.addField("eth.type", field.EthType, "", scopeDefault)
	st.addPredicate("eth.bcast", "eth.dst == ff:ff:ff:ff:ff:ff")
	st.addSubfield("eth.mcast", "", "eth.dst", 40, 40, scopeDefault)
	st.addPredicate("eth.mcastv6", "eth.dst[32..47] == 0x3333")

	st.addField("vlan.tci", field.VLANTCI, "", scopeDefault)
	st.addPredicate("vlan.present", "vlan.tci[12]")
	st.addSubfield("vlan.pcp", "vlan.present", "vlan.tci", 13, 15, scopeDefault)
	st.addSubfield("vlan.vid", "vlan.present", "vlan.tci", 0, 11, scopeDefault)

	st.addPredicate("ip4", "eth.type == 0x800")
	st.addPredicate("ip6", "eth.type == 0x86dd")
	st.addPredicate("ip", "ip4 || ip6")
	st.addField("ip.proto", field.IPProto, "ip", scopeDefault)
	st.addField("ip.dscp", field.IPDSCP, "ip", scopeDefault)
	st.addField("ip.ecn", field.IPECN, "ip", scopeDefault)
	st.addField("ip.ttl", field.IPTTL, "ip", scopeDefault)

	st.addField("ip4.src", field.IPv4Src, "ip4", scopeDefault)
	st.addField("ip4.dst", field.IPv4Dst, "ip4", scopeDefault)
	st.addPredicate("ip4.src_mcast", "ip4.src[28..31] == 0xe")
	st.addPredicate("ip4.mcast", "eth.mcast && ip4.dst[28..31] == 0xe")

	st.addPredicate("icmp4", "ip4 && ip.proto == 1")
	st.addField("icmp4.type", field.ICMPv4Type, "icmp4", scopeDefault)
	st.addField("icmp4.code", field.ICMPv4Code, "icmp4", scopeDefault)

	st.addPredicate("igmp", "ip4 && ip.proto == 2")

	st.addField("ip6.src", field.IPv6Src, "ip6", scopeDefault)
	st.addField("ip6.dst", field.IPv6Dst, "ip6", scopeDefault)
	st.addField("ip6.label", field.IPv6Label, "ip6", scopeDefault)

	st.addPredicate("ip6.mcast_rsvd", "ip6.dst[116..127] == 0xff0 && ip6.dst[0..111] == 0x0")
	st.addPredicate("ip6.mcast_all_nodes", "ip6.dst == ff01::1 || ip6.dst == ff02::1")
	st.addPredicate("ip6.mcast_all_rtrs", "ip6.dst == ff01::2 || ip6.dst == ff02::2 || ip6.dst == ff05::2")
	st.addPredicate("ip6.mcast_sol_node", "ip6.dst == ff02::1:ff00:0000/104")
	st.addPredicate("ip6.mcast_flood", "eth.mcastv6 && (ip6.mcast_rsvd || ip6.mcast_all_nodes || ip6.mcast_all_rtrs || ip6.mcast_sol_node)")
	st.addPredicate("ip6.mcast", "eth.mcastv6 && ip6.dst[120..127] == 0xff")

	st.addPredicate("icmp6", "ip6 && ip.proto == 58")
	st.addField("icmp6.type", field.ICMPv6Type, "icmp6", scopeDefault)
	st.addField("icmp6.code", field.ICMPv6Code, "icmp6", scopeDefault)
	st.addPredicate("icmp", "icmp4 || icmp6")

	st.addField("ip.frag", field.IPFrag, "ip", scopeDefault)
	st.addPredicate("ip.is_frag", "ip.frag[0]")
	st.addPredicate("ip.later_frag", "ip.frag[1]")
	st.addPredicate("ip.first_frag", "ip.is_frag && !ip.later_frag")

	st.addPredicate("arp", "eth.type == 0x806")
	st.addField("arp.op", field.ARPOp, "arp", scopeDefault)
	st.addField("arp.spa", field.ARPSPA, "arp", scopeDefault)
	st.addField("arp.sha", field.ARPSHA, "arp", scopeDefault)
	st.addField("arp.tpa", field.ARPTPA, "arp", scopeDefault)
	st.addField("arp.tha", field.ARPTHA, "arp", scopeDefault)

	st.addPredicate("rarp", "eth.type == 0x8035")
	// RARP shares ARP's layout and storage.
	for _, f := range []struct {
		n  string
		id field.ID
	}{{"op", field.ARPOp}, {"spa", field.ARPSPA}, {"sha", field.ARPSHA}, {"tpa", field.ARPTPA}, {"tha", field.ARPTHA}} {
		s := *st["arp."+f.n]
		s.name, s.prereqs = "rarp."+f.n, "rarp"
		st[s.name] = &s
	}

	st.addPredicate("nd", "icmp6.type == {135, 136} && icmp6.code == 0 && ip.ttl == 255")
	st.addPredicate("nd_ns", "icmp6.type == 135 && icmp6.code == 0 && ip.ttl == 255")
	st.addPredicate("nd_na", "icmp6.type == 136 && icmp6.code == 0 && ip.ttl == 255")
	st.addPredicate("nd_rs", "icmp6.type == 133 && icmp6.code == 0 && ip.ttl == 255")
	st.addPredicate("nd_ra", "icmp6.type == 134 && icmp6.code == 0 && ip.ttl == 255")
	st.addField("nd.target", field.NDTarget, "nd", scopeDefault)
	st.addField("nd.sll", field.NDSLL, "nd_ns", scopeDefault)
	st.addField("nd.tll", field.NDTLL, "nd_na", scopeDefault)

	st.addPredicate("mldv1", "ip6.src == fe80::/10 && icmp6.type == {130, 131, 132}")
	st.addPredicate("mldv2", "ip6.dst == ff02::16 && icmp6.type == 143")

	st.addPredicate("tcp", "ip.proto == 6")
	st.addField("tcp.src", field.TCPSrc, "tcp", scopeDefault)
	st.addField("tcp.dst", field.TCPDst, "tcp", scopeDefault)
	st.addField("tcp.flags", field.TCPFlags, "tcp", scopeDefault)

	st.addPredicate("udp", "ip.proto == 17")
	st.addField("udp.src", field.UDPSrc, "udp", scopeDefault)
	st.addField("udp.dst", field.UDPDst, "udp", scopeDefault)

	st.addPredicate("sctp", "ip.proto == 132")
	st.addField("sctp.src", field.SCTPSrc, "sctp", scopeDefault)
	st.addField("sctp.dst", field.SCTPDst, "sctp", scopeDefault)

	st.addField("pkt.mark", field.PktMark, "", scopeDefault)

	st["icmp4.frag_mtu"] = &symbol{name: "icmp4.frag_mtu", width: 16, ovnField: true, rw: scopeAll}
	st["icmp6.frag_mtu"] = &symbol{name: "icmp6.frag_mtu", width: 32, ovnField: true, rw: scopeAll}
	return st
}

// resolve follows subfield links to the underlying field: the field and
// the offset of bits ofs.. of s within it.
func (s *symbol) resolve(ofs, bits int) field.Subfield {
	for s.parent != nil {
		ofs += s.parentOfs
		s = s.parent
	}
	if s.width == 0 {
		bits = field.Lookup(s.field).Bits
	}
	return field.Subfield{Field: s.field, Ofs: ofs, Bits: bits}
}
