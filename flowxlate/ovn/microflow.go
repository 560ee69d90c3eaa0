package ovn

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// parseMicroflow turns a microflow, an OVN match expression that pins down
// one packet ("inport == \"p1\" && ip4.src == 10.0.0.1 && tcp.dst == 80"),
// into a Key, resolving port names in dp. Fields the microflow does not
// constrain are 0. Prerequisites count: tcp.dst implies ip.proto == 6 and,
// with ip4.src, eth.type == 0x800.
func (t *Translator) parseMicroflow(s string, dp *datapath) (field.Key, error) {
	var key field.Key
	e, err := parseExprString(s, t.st, worldNames{t.w}, nil, 0)
	if err != nil {
		return key, err
	}
	e, err = t.st.annotate(e, nil)
	if err != nil {
		return key, err
	}
	expandSets(e)
	annotated := formatExpr(e)
	e = simplify(e, nil)

	var clauses []*expr
	switch e.kind {
	case eBool:
		if !e.b {
			return key, errors.New("Constraints are contradictory.")
		}
		return key, nil
	case eAnd:
		clauses = e.subs
	default:
		clauses = []*expr{e}
	}
	var known field.Key // mask of the bits constrained so far
	apply := func(c *expr) error {
		if c.sym.width == 0 {
			k, ok := dp.portKey(c.str)
			if !ok {
				return nil // an unknown port leaves the field unset, as in ovn-trace
			}
			key.Set(c.sym.field, field.U64(uint64(k)))
			known.Set(c.sym.field, field.Ones(32))
			return nil
		}
		have, kn := key.Get(c.sym.field), known.Get(c.sym.field)
		both := kn.And(c.mask)
		if have.And(both) != c.value.And(both) {
			return errors.New("Constraints are contradictory.")
		}
		key.SetMasked(c.sym.field, c.value, c.mask)
		known.SetMasked(c.sym.field, c.mask, c.mask)
		return nil
	}
	var pending []*expr
	for _, c := range clauses {
		if c.kind == eCmp {
			if err := apply(c); err != nil {
				return field.Key{}, err
			}
		} else {
			pending = append(pending, c)
		}
	}
	for progress := true; len(pending) > 0 && progress; {
		progress = false
		var still []*expr
		for _, c := range pending {
			switch satisfied(c, &key, &known) {
			case yes:
				progress = true
				continue
			case no:
				return field.Key{}, errors.New("Constraints are contradictory.")
			}
			// Apply an alternative if it is the only one still possible.
			var only *expr
			n := 0
			for _, alt := range alternatives(c) {
				if satisfied(alt, &key, &known) != no {
					only = alt
					n++
				}
			}
			if n == 1 && c.kind == eOr {
				for _, cmp := range conjuncts(only) {
					if err := apply(cmp); err != nil {
						return field.Key{}, err
					}
				}
				progress = true
				continue
			}
			still = append(still, c)
		}
		pending = still
	}
	if len(pending) > 0 {
		return field.Key{}, fmt.Errorf("Constraints are ambiguous: %s.", annotated)
	}
	return key, nil
}

// expandSets replaces every address-set node in e by its disjunction.
func expandSets(e *expr) {
	switch e.kind {
	case eSet:
		e.expandSet()
	case eAnd, eOr:
		for _, s := range e.subs {
			expandSets(s)
		}
	}
}

type tristate uint8

const (
	maybe tristate = iota
	yes
	no
)

// satisfied evaluates e against the bits constrained so far.
func satisfied(e *expr, key, known *field.Key) tristate {
	switch e.kind {
	case eBool:
		if e.b {
			return yes
		}
		return no
	case eCmp:
		if e.sym.width == 0 {
			return maybe
		}
		have, kn := key.Get(e.sym.field), known.Get(e.sym.field)
		both := kn.And(e.mask)
		if have.And(both) != e.value.And(both) {
			return no
		}
		if both == e.mask {
			return yes
		}
		return maybe
	case eAnd:
		r := yes
		for _, s := range e.subs {
			switch satisfied(s, key, known) {
			case no:
				return no
			case maybe:
				r = maybe
			}
		}
		return r
	case eOr:
		r := no
		for _, s := range e.subs {
			switch satisfied(s, key, known) {
			case yes:
				return yes
			case maybe:
				r = maybe
			}
		}
		return r
	}
	return maybe
}

func alternatives(e *expr) []*expr {
	if e.kind == eOr {
		return e.subs
	}
	return []*expr{e}
}

// conjuncts returns the comparisons of a conjunction of comparisons.
func conjuncts(e *expr) []*expr {
	switch e.kind {
	case eCmp:
		return []*expr{e}
	case eAnd:
		var out []*expr
		for _, s := range e.subs {
			out = append(out, conjuncts(s)...)
		}
		return out
	}
	return nil
}

// formatExpr writes an expression back in the match language.
func formatExpr(e *expr) string {
	var b strings.Builder
	writeExpr(&b, e)
	return b.String()
}

func writeExpr(b *strings.Builder, e *expr) {
	switch e.kind {
	case eSet:
		c := e.clone()
		c.expandSet()
		writeExpr(b, c)
	case eBool:
		if e.b {
			b.WriteString("1")
		} else {
			b.WriteString("0")
		}
	case eCond:
		if e.not {
			b.WriteByte('!')
		}
		b.WriteString("is_chassis_resident(" + quoteString(e.str) + ")")
	case eCmp:
		b.WriteString(e.sym.name)
		if e.sym.width == 0 {
			b.WriteString(" " + e.op.String() + " " + quoteString(e.str))
			return
		}
		ofs := e.mask.TrailingZeros()
		n := e.mask.Shr(ofs).OnesCount()
		contiguous := field.Range(ofs, n) == e.mask
		if contiguous && (ofs != 0 || n != e.sym.width) {
			if n == 1 {
				fmt.Fprintf(b, "[%d]", ofs)
			} else {
				fmt.Fprintf(b, "[%d..%d]", ofs, ofs+n-1)
			}
			fmt.Fprintf(b, " %s %s", e.op, e.value.Shr(ofs).Hex())
			return
		}
		if contiguous {
			fmt.Fprintf(b, " %s %s", e.op, e.value.Hex())
			return
		}
		fmt.Fprintf(b, " %s %s/%s", e.op, e.value.Hex(), e.mask.Hex())
	case eAnd, eOr:
		op := " && "
		if e.kind == eOr {
			op = " || "
		}
		for i, s := range e.subs {
			if i > 0 {
				b.WriteString(op)
			}
			paren := s.kind == eAnd || s.kind == eOr
			if paren {
				b.WriteByte('(')
			}
			writeExpr(b, s)
			if paren {
				b.WriteByte(')')
			}
		}
	}
}

// FormatFlow shows a packet the way Open vSwitch shows a flow: a protocol
// keyword, the non-zero registers, then the header fields.
func FormatFlow(k *field.Key) string {
	var parts []string
	add := func(name string, id field.ID) {
		parts = append(parts, name+"="+field.FormatValue(id, k.Get(id)))
	}
	et := k.Get(field.EthType).Lo
	proto := k.Get(field.IPProto).Lo
	isIP := et == field.EthTypeIPv4 || et == field.EthTypeIPv6
	v6 := et == field.EthTypeIPv6
	kw := ""
	switch {
	case et == field.EthTypeARP:
		kw = "arp"
	case et == field.EthTypeRARP:
		kw = "rarp"
	case isIP && proto == field.ProtoTCP:
		kw = map[bool]string{false: "tcp", true: "tcp6"}[v6]
	case isIP && proto == field.ProtoUDP:
		kw = map[bool]string{false: "udp", true: "udp6"}[v6]
	case isIP && proto == field.ProtoSCTP:
		kw = map[bool]string{false: "sctp", true: "sctp6"}[v6]
	case et == field.EthTypeIPv4 && proto == field.ProtoICMPv4:
		kw = "icmp"
	case v6 && proto == field.ProtoICMPv6:
		kw = "icmp6"
	case et == field.EthTypeIPv4:
		kw = "ip"
	case v6:
		kw = "ipv6"
	}
	// Packet context first, as OVS prints it: only the non-zero fields.
	if v := k.Get(field.PktMark); !v.IsZero() {
		parts = append(parts, "pkt_mark="+v.Hex())
	}
	if v := k.Get(field.CTState); !v.IsZero() {
		parts = append(parts, "ct_state="+field.FormatCTStateFlags(uint32(v.Lo), "|"))
	}
	if v := k.Get(field.CTZone); !v.IsZero() {
		parts = append(parts, fmt.Sprintf("ct_zone=%d", v.Lo))
	}
	if v := k.Get(field.CTMark); !v.IsZero() {
		parts = append(parts, "ct_mark="+v.Hex())
	}
	if v := k.Get(field.CTLabel); !v.IsZero() {
		parts = append(parts, "ct_label="+v.Hex())
	}
	if k.Get(field.CTNwProto).Lo != 0 && k.Get(field.CTState).Lo&field.CSTrk != 0 {
		if v6 {
			add("ct_ipv6_src", field.CTIPv6Src)
			add("ct_ipv6_dst", field.CTIPv6Dst)
		} else {
			add("ct_nw_src", field.CTNwSrc)
			add("ct_nw_dst", field.CTNwDst)
		}
		add("ct_nw_proto", field.CTNwProto)
		add("ct_tp_src", field.CTTpSrc)
		add("ct_tp_dst", field.CTTpDst)
	}
	if kw != "" {
		parts = append(parts, kw)
	}
	for i := 0; i < field.NumRegs; i++ {
		if v := k.Get(field.Reg(i)); !v.IsZero() {
			parts = append(parts, fmt.Sprintf("reg%d=%s", i, v.Hex()))
		}
	}
	if v := k.Get(field.Metadata); !v.IsZero() {
		parts = append(parts, "metadata="+v.Hex())
	}
	if v := k.Get(field.InPort); !v.IsZero() {
		parts = append(parts, fmt.Sprintf("in_port=%d", v.Lo))
	}
	parts = append(parts, fmt.Sprintf("vlan_tci=0x%04x", k.Get(field.VLANTCI).Lo))
	add("dl_src", field.EthSrc)
	add("dl_dst", field.EthDst)
	if kw == "" {
		add("dl_type", field.EthType)
		return strings.Join(parts, ",")
	}
	switch {
	case et == field.EthTypeARP || et == field.EthTypeRARP:
		add("arp_spa", field.ARPSPA)
		add("arp_tpa", field.ARPTPA)
		add("arp_op", field.ARPOp)
		add("arp_sha", field.ARPSHA)
		add("arp_tha", field.ARPTHA)
		return strings.Join(parts, ",")
	case v6:
		add("ipv6_src", field.IPv6Src)
		add("ipv6_dst", field.IPv6Dst)
		parts = append(parts, fmt.Sprintf("ipv6_label=0x%05x", k.Get(field.IPv6Label).Lo))
	default:
		add("nw_src", field.IPv4Src)
		add("nw_dst", field.IPv4Dst)
	}
	if kw == "ip" || kw == "ipv6" {
		add("nw_proto", field.IPProto)
	}
	parts = append(parts, fmt.Sprintf("nw_tos=%d", k.Get(field.IPDSCP).Lo<<2))
	add("nw_ecn", field.IPECN)
	add("nw_ttl", field.IPTTL)
	add("nw_frag", field.IPFrag)
	switch kw {
	case "icmp":
		add("icmp_type", field.ICMPv4Type)
		add("icmp_code", field.ICMPv4Code)
	case "icmp6":
		add("icmp_type", field.ICMPv6Type)
		add("icmp_code", field.ICMPv6Code)
		if t := k.Get(field.ICMPv6Type).Lo; t == 135 || t == 136 {
			add("nd_target", field.NDTarget)
			if t == 135 {
				add("nd_sll", field.NDSLL)
			} else {
				add("nd_tll", field.NDTLL)
			}
		}
	case "tcp", "tcp6", "udp", "udp6", "sctp", "sctp6":
		add("tp_src", field.TCPSrc)
		add("tp_dst", field.TCPDst)
		if kw == "tcp" || kw == "tcp6" {
			parts = append(parts, fmt.Sprintf("tcp_flags=%d", k.Get(field.TCPFlags).Lo))
		}
	}
	return strings.Join(parts, ",")
}
