package ovn

import (
	"fmt"
	"strings"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// Logical pipeline shape (ovn-architecture(7)).
const (
	pipelineIngress = 0
	pipelineEgress  = 1

	// numLogicalTables is the number of tables in each logical pipeline;
	// next cannot go beyond the last.
	numLogicalTables = 29

	// maxNestedActions bounds nesting of clone { arp { ... } }.
	maxNestedActions = 32
)

// genOpt is an option put_dhcp_opts, put_dhcpv6_opts, put_nd_ra_opts or
// trigger_event accepts.
type genOpt struct {
	name string
	code int
	typ  string
}

// optionTables holds the option names the option-setting actions accept.
type optionTables struct {
	dhcp   map[string]genOpt
	dhcpv6 map[string]genOpt
	ndRA   map[string]genOpt
	events map[string]map[string]genOpt // by event name
}

func defaultOptionTables() *optionTables {
	t := &optionTables{
		dhcp:   map[string]genOpt{},
		dhcpv6: map[string]genOpt{},
		ndRA:   map[string]genOpt{},
		events: map[string]map[string]genOpt{"empty_lb_backends": {}},
	}
	for _, o := range []genOpt{
		{"addr_mode", 1, "str"}, {"router_preference", 2, "str"}, {"slla", 3, "mac"},
		{"prefix", 4, "ipv6"}, {"mtu", 5, "uint32"}, {"rdnss", 6, "ipv6"},
		{"dnssl", 7, "str"}, {"route_info", 8, "str"},
	} {
		t.ndRA[o.name] = o
	}
	for i, n := range []string{"vip", "protocol", "load_balancer"} {
		t.events["empty_lb_backends"][n] = genOpt{n, i + 1, "str"}
	}
	return t
}

// actionParser compiles an action string into ir actions for one logical
// datapath.
type actionParser struct {
	lx       *lexer
	st       symtab
	in       string
	pipeline int
	table    int
	dp       *datapath
	opts     *optionTables
	scope    writeScope
	depth    int
	prereqs  *expr
	required []string // prerequisites already in prereqs
}

// parseActions compiles s, the actions of a logical flow in table table of
// pipeline, for datapath dp. It returns the actions and the prerequisites
// they add to the flow's match.
func parseActions(s string, st symtab, pipeline, table int, dp *datapath, opts *optionTables) ([]ir.Action, *expr, error) {
	p := &actionParser{lx: newLexer(s), st: st, in: s, pipeline: pipeline, table: table, dp: dp, opts: opts, scope: scopeDefault}
	acts := p.parseList(tEnd)
	if p.lx.err != nil {
		return nil, nil, p.lx.err
	}
	return acts, p.prereqs, nil
}

// addPrereq adds a built-in prerequisite of an action.
func (p *actionParser) addPrereq(s string) {
	if err := p.require(s); err != nil {
		panic(fmt.Sprintf("ovn: bad built-in prerequisite %q: %v", s, err))
	}
}

// require adds prerequisite s to the flow's match, once: a conjunction
// holds no matter how often a term repeats, and every field of ARP adds
// "arp".
func (p *actionParser) require(s string) error {
	for _, x := range p.required {
		if x == s {
			return nil
		}
	}
	e, err := p.st.parseAnnotated(s, nil)
	if err != nil {
		return err
	}
	p.required = append(p.required, s)
	p.prereqs = combine(eAnd, p.prereqs, e)
	return nil
}

func (p *actionParser) parseList(sentinel tokType) []ir.Action {
	lx := p.lx
	if lx.isID("drop") && lx.lookahead() == tSemicolon {
		lx.next()
		lx.next()
		lx.force(sentinel)
		return nil
	}
	var acts []ir.Action
	for !lx.match(sentinel) {
		a := p.parseAction()
		if lx.err != nil {
			return nil
		}
		if a != nil {
			acts = append(acts, a)
		}
	}
	return acts
}

// text returns the source of the action that began at start, up to and
// including its semicolon.
func (p *actionParser) text(start int) ir.Src {
	return ir.Src(strings.TrimSpace(p.in[start:p.lx.start]))
}

func (p *actionParser) parseAction() ir.Action {
	lx := p.lx
	start := lx.start
	if lx.tok.typ == tTemplate {
		lx.error("Unexpanded template.")
		return nil
	}
	if lx.tok.typ != tID {
		lx.syntaxError("")
		return nil
	}
	var a ir.Action
	switch la := lx.lookahead(); {
	case la == tEquals || la == tExchange || la == tLSquare:
		a = p.parseSet()
	default:
		a = p.parseKeyword()
	}
	if lx.err != nil {
		return nil
	}
	if !lx.force(tSemicolon) {
		return nil
	}
	src := p.text(start)
	setSrc(a, src)
	return a
}

// setSrc fills in the source text of a freshly parsed action.
func setSrc(a ir.Action, src ir.Src) {
	switch a := a.(type) {
	case *ir.SetField:
		a.Src = src
	case *ir.Move:
		a.Src = src
	case *ir.Exchange:
		a.Src = src
	case *ir.Push:
		a.Src = src
	case *ir.Pop:
		a.Src = src
	case *ir.DecTTL:
		a.Src = src
	case *ir.Next:
		a.Src = src
	case *ir.Output:
		a.Src = src
	case *ir.Clone:
		a.Src = src
	case *ir.CTClear:
		a.Src = src
	case *ir.CT:
		a.Src = src
	case *ir.Ext:
		a.Src = src
	}
}

// keywords are the actions that start with a keyword rather than a field.
var keywords = map[string]bool{
	"next": true, "push": true, "pop": true, "output": true, "ip.ttl": true, "ct_next": true,
	"ct_commit": true, "ct_dnat": true, "ct_snat": true, "ct_dnat_in_czone": true,
	"ct_snat_in_czone": true, "ct_lb": true, "ct_lb_mark": true, "ct_clear": true,
	"ct_commit_nat": true, "clone": true, "arp": true, "icmp4": true, "icmp4_error": true,
	"icmp6": true, "icmp6_error": true, "tcp_reset": true, "sctp_abort": true, "nd_na": true,
	"nd_na_router": true, "nd_ns": true, "reject": true, "igmp": true, "get_arp": true,
	"get_nd": true, "put_arp": true, "put_nd": true, "set_queue": true, "log": true,
	"set_meter": true, "trigger_event": true, "bind_vport": true, "handle_svc_check": true,
	"handle_dhcpv6_reply": true, "handle_bfd_msg": true, "ct_snat_to_vip": true,
	"put_fdb": true, "fwd_group": true, "commit_ecmp_nh": true, "commit_lb_aff": true,
	"sample": true,
}

func (p *actionParser) parseKeyword() ir.Action {
	lx := p.lx
	name := lx.tok.s
	if !keywords[name] {
		lx.syntaxError("expecting action")
		return nil
	}
	lx.next()
	switch name {
	case "next":
		return p.parseNext()
	case "push", "pop":
		return p.parsePushPop(name == "push")
	case "output":
		return &ir.Output{}
	case "ip.ttl":
		lx.force(tDecrement)
		p.addPrereq("ip")
		return &ir.DecTTL{}
	case "ct_next":
		p.addPrereq("ip")
		return &ir.CT{Zone: p.ctZone(), Recirc: true, Table: p.table + 1, Flavor: "ct_next"}
	case "ct_commit":
		return p.parseCTCommit()
	case "ct_dnat", "ct_snat", "ct_dnat_in_czone", "ct_snat_in_czone":
		return p.parseCTNAT(name)
	case "ct_lb", "ct_lb_mark":
		return p.parseCTLB(name)
	case "ct_clear":
		return &ir.CTClear{}
	case "ct_commit_nat":
		return p.parseCTCommitNAT()
	case "clone":
		body := p.parseNested("", scopeDefault)
		return &ir.Clone{Body: body}
	case "arp", "icmp4", "icmp4_error", "icmp6", "icmp6_error", "tcp_reset", "sctp_abort",
		"nd_na", "nd_na_router", "nd_ns", "reject":
		return p.parseCompose(name)
	case "igmp":
		return &ir.Ext{Op: noop{name}}
	case "get_arp", "get_nd":
		return p.parseGetMACBind(name)
	case "put_arp", "put_nd":
		return p.parsePutMACBind(name)
	case "set_queue":
		return p.parseSetQueue()
	case "log":
		return p.parseLog()
	case "set_meter":
		return p.parseSetMeter()
	case "trigger_event":
		return p.parseTriggerEvent()
	case "bind_vport":
		return p.parseBindVport()
	case "handle_svc_check":
		lx.force(tLParen)
		f, ok := p.parseFieldArg(0, false)
		if !ok {
			return nil
		}
		lx.force(tRParen)
		return &ir.Ext{Op: noop{name + "(" + f.String() + ")"}}
	case "handle_dhcpv6_reply":
		return &ir.Ext{Op: noop{name}}
	case "handle_bfd_msg":
		lx.force(tLParen)
		lx.force(tRParen)
		return &ir.Ext{Op: noop{name}}
	case "ct_snat_to_vip":
		return &ir.Ext{Op: ctSNATToVIP{}}
	case "put_fdb":
		lx.force(tLParen)
		port, ok := p.parseFieldArg(0, false)
		if !ok || !lx.force(tComma) {
			return nil
		}
		mac, ok := p.parseFieldArg(48, false)
		if !ok {
			return nil
		}
		lx.force(tRParen)
		return &ir.Ext{Op: putFDB{port: port.resolved(), mac: mac.resolved()}}
	case "fwd_group", "commit_ecmp_nh", "commit_lb_aff", "sample":
		if name == "sample" && !lx.isBalancedArgsPresent() {
			lx.error("probability must be greater than zero")
			return nil
		}
		p.skipArgs()
		return &ir.Ext{Op: noop{name}}
	}
	lx.syntaxError("expecting action")
	return nil
}

// isBalancedArgsPresent reports whether an argument list follows.
func (lx *lexer) isBalancedArgsPresent() bool { return lx.tok.typ == tLParen }

// skipArgs skips a parenthesised argument list, if any. It is used for
// actions whose arguments only the physical layer interprets and that a
// logical trace passes over (ovn-trace does the same).
func (p *actionParser) skipArgs() {
	lx := p.lx
	if !lx.match(tLParen) {
		return
	}
	for depth := 1; depth > 0; {
		switch lx.tok.typ {
		case tEnd, tError:
			lx.syntaxError("expecting `)'")
			return
		case tLParen:
			depth++
		case tRParen:
			depth--
		}
		lx.next()
	}
}

// zoneReg is the 16-bit zone held in register reg.
func zoneReg(reg int) field.Subfield { return field.Subfield{Field: field.Reg(reg), Bits: 16} }

// ctZone is the zone of ct_next, ct_commit { }, ct_lb, ct_lb_mark and
// ct_commit_nat (dnat): the logical port's zone in a switch, the DNAT zone
// in a router (OVN's lib/actions.c).
func (p *actionParser) ctZone() field.Subfield {
	if p.dp != nil && !p.dp.isSwitch {
		return zoneReg(regLogDNATZone)
	}
	return zoneReg(regLogCTZone)
}

// commonNATZone is the zone of ct_dnat_in_czone and ct_snat_in_czone: the
// DNAT zone, or the SNAT zone when the datapath has snat-ct-zone set
// (ovn-controller's get_common_nat_zone).
func (p *actionParser) commonNATZone() field.Subfield {
	if p.dp != nil && p.dp.snatCTZone {
		return zoneReg(regLogSNATZone)
	}
	return zoneReg(regLogDNATZone)
}

func (p *actionParser) parseNext() ir.Action {
	lx := p.lx
	pipeline, table := p.pipeline, p.table+1
	if lx.match(tLParen) {
		if lx.isInt() {
			table, _ = lx.forceInt()
		} else {
			for {
				switch {
				case lx.matchID("pipeline"):
					if !lx.force(tEquals) {
						return nil
					}
					switch {
					case lx.matchID("ingress"):
						pipeline = pipelineIngress
					case lx.matchID("egress"):
						pipeline = pipelineEgress
					default:
						lx.syntaxError("expecting \"ingress\" or \"egress\"")
						return nil
					}
				case lx.matchID("table"):
					var ok bool
					if !lx.force(tEquals) {
						return nil
					}
					if table, ok = lx.forceInt(); !ok {
						return nil
					}
				default:
					lx.syntaxError("expecting \"pipeline\" or \"table\"")
					return nil
				}
				if !lx.match(tComma) {
					break
				}
			}
		}
		if !lx.force(tRParen) {
			return nil
		}
	}
	if table >= numLogicalTables {
		lx.error("\"next\" action cannot advance beyond table %d.", numLogicalTables-1)
		return nil
	}
	stage := ir.SameStage
	if pipeline != p.pipeline {
		stage = pipeline
	}
	return &ir.Next{Stage: stage, Table: table}
}

// parseFieldArg parses a field reference used by an action, adds its
// prerequisites, and checks its width (0: string field) and writability.
func (p *actionParser) parseFieldArg(bits int, rw bool) (fieldRef, bool) {
	f, ok := p.parseLvalue()
	if !ok {
		return f, false
	}
	if err := typeCheckField(f, bits, rw, p.scope); err != "" {
		p.lx.error("%s", err)
		return f, false
	}
	return f, true
}

// parseLvalue parses a field an action reads or writes (not a predicate)
// and adds its prerequisites to the flow's match.
func (p *actionParser) parseLvalue() (fieldRef, bool) {
	f, ok := parseField(p.lx, p.st)
	if !ok {
		return f, false
	}
	if f.sym.predicate != "" {
		p.lx.error("Predicate symbol %s used where lvalue required.", f.sym.name)
		return f, false
	}
	return f, p.fieldPrereqs(f)
}

// fieldPrereqs adds the prerequisites of f's symbol and its parents.
func (p *actionParser) fieldPrereqs(f fieldRef) bool {
	for s := f.sym; s != nil; s = s.parent {
		if s.prereqs != "" {
			if err := p.require(s.prereqs); err != nil {
				p.lx.error("%v", err)
				return false
			}
		}
	}
	return true
}

func typeCheckField(f fieldRef, bits int, rw bool, scope writeScope) string {
	if bits != f.bits {
		switch {
		case bits != 0 && f.bits != 0:
			return fmt.Sprintf("Cannot use %d-bit field %s[%d..%d] where %d-bit field is required.",
				f.bits, f.sym.name, f.ofs, f.ofs+f.bits-1, bits)
		case bits != 0:
			return fmt.Sprintf("Cannot use string field %s where numeric field is required.", f.sym.name)
		default:
			return fmt.Sprintf("Cannot use numeric field %s where string field is required.", f.sym.name)
		}
	}
	if rw && f.sym.rw&scope == 0 {
		return fmt.Sprintf("Field %s is not modifiable.", f.sym.name)
	}
	return ""
}

// parseSet parses "field = ...", "field <-> field" and the actions that
// return a value into a field ("reg0[0] = lookup_arp(...)").
func (p *actionParser) parseSet() ir.Action {
	lx := p.lx
	lhs, ok := p.parseLvalue()
	if !ok {
		return nil
	}
	if lx.match(tExchange) {
		return p.parseAssignment(lhs, true)
	}
	if !lx.match(tEquals) {
		lx.syntaxError("expecting `=' or `<->'")
		return nil
	}
	if lx.tok.typ != tID {
		return p.parseLoad(lhs)
	}
	if lx.lookahead() == tLParen {
		switch fn := lx.tok.s; fn {
		case "select":
			return p.parseSelect(lhs)
		case "put_dhcp_opts", "put_dhcpv6_opts", "put_nd_ra_opts":
			return p.parsePutOpts(lhs, fn)
		case "dns_lookup":
			return p.parseResult(lhs, fn, "udp", func(dst field.Subfield) ir.ExtOp { return dnsLookup{dst} })
		case "check_pkt_larger":
			return p.parseCheckPktLarger(lhs)
		case "lookup_arp", "lookup_nd", "lookup_arp_ip", "lookup_nd_ip":
			return p.parseLookupMACBind(lhs, fn)
		case "chk_lb_hairpin", "chk_lb_hairpin_reply":
			reply := fn == "chk_lb_hairpin_reply"
			return p.parseResult(lhs, fn, "", func(dst field.Subfield) ir.ExtOp {
				return chkLBHairpin{dst: dst, name: lhs.String(), reply: reply}
			})
		case "get_fdb":
			return p.parseGetFDB(lhs)
		case "lookup_fdb":
			return p.parseLookupFDB(lhs)
		case "check_in_port_sec", "check_out_port_sec":
			in := fn == "check_in_port_sec"
			return p.parseResult(lhs, fn, "", func(dst field.Subfield) ir.ExtOp { return checkPortSec{dst: dst, in: in} })
		case "chk_ecmp_nh_mac", "chk_ecmp_nh", "chk_lb_aff":
			return p.parseResult(lhs, fn, "", func(dst field.Subfield) ir.ExtOp { return noop{fn} })
		}
	}
	return p.parseAssignment(lhs, false)
}

func (p *actionParser) parseLoad(lhs fieldRef) ir.Action {
	lx := p.lx
	if err := typeCheckField(lhs, lhs.bits, true, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	cs := newConstSet()
	if !parseConst(lx, cs, nil) || !typeCheck(lx, lhs, cs) {
		return nil
	}
	c := cs.values[0]
	if lhs.sym.ovnField {
		return &ir.Ext{Op: ovnFieldLoad{name: lhs.sym.name, value: c.value.Lo}}
	}
	dst := lhs.resolved()
	sf := &ir.SetField{Dst: dst}
	if lhs.sym.width == 0 {
		key, _ := p.dp.portKey(c.str)
		sf.Value = field.U64(uint64(key))
	} else {
		sf.Value = c.value.And(field.Ones(lhs.bits))
		if c.masked {
			// A masked constant sets only the masked bits: split it into
			// one store per run of mask bits.
			return p.maskedLoad(lhs, c)
		}
	}
	if !field.IsRegister(dst.Field) {
		sf.Note = loadNote{lhs: lhs, c: c}
	}
	return sf
}

// loadNote is the trace line of a load: "eth.dst = 00:00:00:00:00:01".
type loadNote struct {
	lhs fieldRef
	c   constant
}

func (n loadNote) String() string {
	return n.lhs.String() + " = " + constString(n.c, n.lhs.sym.width == 0)
}

// maskedLoad expresses "f = value/mask" as stores to the runs of 1 bits in
// mask, wrapped in a clone-free sequence.
func (p *actionParser) maskedLoad(lhs fieldRef, c constant) ir.Action {
	m := c.mask.And(field.Ones(lhs.bits))
	var stores []*ir.SetField
	for i := 0; i < lhs.bits; {
		if !m.Bit(i) {
			i++
			continue
		}
		j := i
		for j < lhs.bits && m.Bit(j) {
			j++
		}
		sub := fieldRef{sym: lhs.sym, ofs: lhs.ofs + i, bits: j - i}
		stores = append(stores, &ir.SetField{Dst: sub.resolved(), Value: c.value.Shr(i).And(field.Ones(j - i))})
		i = j
	}
	note := ""
	if !field.IsRegister(lhs.resolved().Field) {
		note = lhs.String() + " = " + constString(c, false)
	}
	return &ir.Ext{Op: multiStore{stores: stores, note: note}}
}

func constString(c constant, isString bool) string {
	if isString {
		return quoteString(c.str)
	}
	return formatConst(c.value, c.mask, c.masked, c.format)
}

func quoteString(s string) string {
	t := token{typ: tString, s: s}
	return t.String()
}

func (p *actionParser) parseAssignment(lhs fieldRef, exchange bool) ir.Action {
	lx := p.lx
	rhs, ok := p.parseLvalue()
	if !ok {
		return nil
	}
	ls, rs := lhs.sym, rhs.sym
	kind := func(s *symbol) string {
		if s.width != 0 {
			return "integer"
		}
		return "string"
	}
	if (ls.width != 0) != (rs.width != 0) {
		if exchange {
			lx.error("Can't exchange %s field (%s) with %s field (%s).", kind(ls), ls.name, kind(rs), rs.name)
		} else {
			lx.error("Can't assign %s field (%s) to %s field (%s).", kind(rs), rs.name, kind(ls), ls.name)
		}
		return nil
	}
	if lhs.bits != rhs.bits {
		if exchange {
			lx.error("Can't exchange %d-bit field with %d-bit field.", lhs.bits, rhs.bits)
		} else {
			lx.error("Can't assign %d-bit value to %d-bit destination.", rhs.bits, lhs.bits)
		}
		return nil
	}
	if err := typeCheckField(lhs, lhs.bits, true, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	if err := typeCheckField(rhs, rhs.bits, exchange, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	dst, src := lhs.resolved(), rhs.resolved()
	name := func(f fieldRef, sf field.Subfield) string {
		if field.IsRegister(sf.Field) {
			return ""
		}
		return f.String()
	}
	if exchange {
		return &ir.Exchange{A: dst, B: src, AName: name(lhs, dst), BName: name(rhs, src)}
	}
	return &ir.Move{Dst: dst, From: src, DstName: name(lhs, dst)}
}

func (p *actionParser) parsePushPop(push bool) ir.Action {
	lx := p.lx
	lx.force(tLParen)
	f, ok := p.parseLvalue()
	if !ok {
		return nil
	}
	if err := typeCheckField(f, f.bits, !push, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	lx.force(tRParen)
	if push {
		return &ir.Push{From: f.resolved(), Name: f.String()}
	}
	return &ir.Pop{Dst: f.resolved(), Name: f.String()}
}

func (p *actionParser) parseNested(prereq string, scope writeScope) []ir.Action {
	lx := p.lx
	if !lx.force(tLCurly) {
		return nil
	}
	if p.depth+1 >= maxNestedActions {
		lx.error("maximum depth of nested actions reached")
		return nil
	}
	inner := *p
	inner.depth++
	inner.scope = scope
	inner.prereqs, inner.required = nil, nil
	body := inner.parseList(tRCurly)
	if prereq != "" {
		p.addPrereq(prereq)
	} else {
		p.prereqs = combine(eAnd, inner.prereqs, p.prereqs)
	}
	return body
}

// parseCTCommitNAT parses ct_commit_nat, optionally ct_commit_nat(dnat)
// or ct_commit_nat(snat): a commit that applies the connection's existing
// NAT to related traffic, in the switch's zone or the router's DNAT
// (default) or SNAT zone.
func (p *actionParser) parseCTCommitNAT() ir.Action {
	lx := p.lx
	p.addPrereq("ip")
	zone := p.ctZone()
	if lx.match(tLParen) {
		switch {
		case lx.matchID("dnat"):
		case lx.matchID("snat"):
			if p.dp != nil && !p.dp.isSwitch {
				zone = zoneReg(regLogSNATZone)
			}
		default:
			lx.error("\"ct_commit_nat\" action accepts only \"dnat\" or \"snat\" parameter.")
			return nil
		}
		if !lx.force(tRParen) {
			return nil
		}
	}
	return &ir.CT{Zone: zone, Commit: true, NAT: &ir.NAT{Kind: ir.NATAuto}, Recirc: true, Table: p.table + 1, Flavor: "ct_commit_nat"}
}

func (p *actionParser) parseCTCommit() ir.Action {
	lx := p.lx
	ct := &ir.CT{Zone: p.ctZone(), Commit: true, Flavor: "ct_commit"}
	switch lx.tok.typ {
	case tLCurly:
		ct.Exec = p.parseNested("ip", scopeCTCommit)
	case tLParen:
		// The older ct_commit(ct_mark=..., ct_label=...) always uses the
		// logical port's zone, in routers too.
		ct.Zone = zoneReg(regLogCTZone)
		p.addPrereq("ip")
		lx.next()
		for !lx.match(tRParen) {
			var sym string
			switch {
			case lx.matchID("ct_mark"):
				sym = "ct_mark"
			case lx.matchID("ct_label"):
				sym = "ct_label"
			default:
				lx.syntaxError("")
				return nil
			}
			if !lx.force(tEquals) {
				return nil
			}
			if lx.tok.typ != tInteger && lx.tok.typ != tMaskedInteger {
				lx.syntaxError("expecting integer")
				return nil
			}
			s := p.st[sym]
			v, m := lx.tok.value, field.Ones(s.width)
			if lx.tok.typ == tMaskedInteger {
				m = lx.tok.mask
			}
			lx.next()
			ct.Exec = append(ct.Exec, &ir.Ext{Op: multiStore{stores: []*ir.SetField{{Dst: field.Whole(s.field), Value: v.And(m)}}}})
			lx.match(tComma)
		}
	default:
		p.addPrereq("ip")
	}
	return ct
}

func (p *actionParser) parseCTNAT(name string) ir.Action {
	lx := p.lx
	p.addPrereq("ip")
	nat := &ir.NAT{Kind: ir.NATAuto}
	if lx.match(tLParen) {
		if lx.tok.typ != tInteger || (lx.tok.format != fmtIPv4 && lx.tok.format != fmtIPv6) {
			lx.syntaxError("expecting IPv4 or IPv6 address")
			return nil
		}
		nat.Kind = ir.NATDst
		if strings.HasPrefix(name, "ct_snat") {
			nat.Kind = ir.NATSrc
		}
		nat.Addr, nat.AddrSet, nat.IPv6 = lx.tok.value, true, lx.tok.format == fmtIPv6
		lx.next()
		if lx.match(tComma) {
			if lx.tok.typ != tInteger || lx.tok.format != fmtDecimal {
				lx.syntaxError("expecting Integer for port range")
				return nil
			}
			nat.PortLo = uint16(lx.tok.value.Lo)
			if nat.PortLo == 0 {
				lx.syntaxError("range can't be 0")
				return nil
			}
			lx.next()
			if lx.match(tHyphen) {
				if lx.tok.typ != tInteger {
					lx.syntaxError("expecting Integer for port range")
					return nil
				}
				nat.PortHi = uint16(lx.tok.value.Lo)
				if nat.PortHi <= nat.PortLo {
					lx.syntaxError("range high should be greater than range low")
					return nil
				}
				lx.next()
			}
		}
		if !lx.force(tRParen) {
			return nil
		}
	}
	zone := zoneReg(regLogDNATZone)
	switch {
	case strings.HasSuffix(name, "_in_czone"):
		zone = p.commonNATZone()
	case strings.HasPrefix(name, "ct_snat"):
		zone = zoneReg(regLogSNATZone)
	}
	return &ir.CT{Zone: zone, Commit: nat.AddrSet, NAT: nat, Recirc: true, Table: p.table + 1, Flavor: name}
}

// Bits of ct_mark (ct_label for ct_lb) that ct_lb_mark writes when it
// commits a new connection (OVN's OVN_CT_*_BIT).
const (
	ctNattedBit = 1 // the connection is DNATed to a backend
	lbSkipSNAT  = 2 // skip_snat: leave the connection out of the router's SNAT
	lbForceSNAT = 3 // force_snat: SNAT it to the router's address
)

func (p *actionParser) parseCTLB(name string) ir.Action {
	lx := p.lx
	p.addPrereq("ip")
	nat := &ir.NAT{Kind: ir.NATDst}
	flag := 0
	if lx.match(tLParen) && !lx.match(tRParen) {
		if !lx.matchID("backends") || !lx.force(tEquals) {
			lx.syntaxError("expecting backends")
			return nil
		}
		for !lx.match(tSemicolon) && !lx.match(tRParen) {
			var b ir.Backend
			if lx.match(tLSquare) {
				if lx.tok.typ != tInteger || lx.tok.format != fmtIPv6 {
					lx.syntaxError("expecting IPv6 address")
					return nil
				}
				b.IPv6, b.Addr = true, lx.tok.value
				lx.next()
				if !lx.match(tRSquare) {
					lx.syntaxError("no closing square bracket")
					return nil
				}
				if lx.match(tColon) && !p.parseUint16(&b.Port, "port number") {
					return nil
				}
			} else {
				if lx.tok.typ != tInteger || (lx.tok.format != fmtIPv4 && lx.tok.format != fmtIPv6) {
					lx.syntaxError("expecting IP address")
					return nil
				}
				b.IPv6, b.Addr = lx.tok.format == fmtIPv6, lx.tok.value
				lx.next()
				if lx.match(tColon) {
					if b.IPv6 {
						lx.syntaxError("IPv6 address needs square brackets if port is included")
						return nil
					}
					if !p.parseUint16(&b.Port, "port number") {
						return nil
					}
				}
			}
			lx.match(tComma)
			nat.Backends = append(nat.Backends, b)
		}
		if lx.matchID("hash_fields") {
			if !lx.match(tEquals) || lx.tok.typ != tString {
				lx.syntaxError("invalid hash_fields")
				return nil
			}
			nat.HashFields = lx.tok.s
			lx.next()
			if !lx.match(tSemicolon) {
				lx.next()
			}
		}
		switch {
		case lx.matchID("skip_snat"):
			flag = lbSkipSNAT
			lx.next()
		case lx.matchID("force_snat"):
			flag = lbForceSNAT
			lx.next()
		}
	}
	ct := &ir.CT{Zone: p.ctZone(), NAT: nat, Recirc: true, Table: p.table + 1, Flavor: name}
	if len(nat.Backends) == 0 {
		// An established connection: ct(nat), applying the binding it has.
		nat.Kind = ir.NATAuto
		return ct
	}
	// A new connection: one select-group bucket per backend, each
	// ct(commit, nat(dst=backend), exec(natted and the SNAT flag into
	// ct_mark, or ct_label for the older ct_lb)).
	ct.Commit = true
	flags := field.CTMark
	if name == "ct_lb" {
		flags = field.CTLabel
	}
	for _, bit := range []int{ctNattedBit, flag} {
		if bit != 0 {
			ct.Exec = append(ct.Exec, &ir.SetField{Src: ir.Src(fmt.Sprintf("%s[%d] = 1;", flags, bit)),
				Dst: field.Subfield{Field: flags, Ofs: bit, Bits: 1}, Value: field.U64(1)})
		}
	}
	return ct
}

func (p *actionParser) parseUint16(v *uint16, what string) bool {
	lx := p.lx
	if lx.tok.typ != tInteger || lx.tok.format != fmtDecimal || lx.tok.value.Hi != 0 || lx.tok.value.Lo > 0xffff {
		lx.syntaxError("expecting %s", what)
		return false
	}
	*v = uint16(lx.tok.value.Lo)
	lx.next()
	return true
}

func (p *actionParser) parseSelect(lhs fieldRef) ir.Action {
	lx := p.lx
	if err := typeCheckField(lhs, lhs.bits, true, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	if lhs.bits < 16 {
		lx.error("cannot use %d-bit field %s[%d..%d] for \"select\", which requires at least 16 bits.",
			lhs.bits, lhs.sym.name, lhs.ofs, lhs.ofs+lhs.bits-1)
		return nil
	}
	lx.next() // select
	lx.next() // (
	sel := selectOp{dst: lhs.resolved(), name: lhs.String(), table: p.table + 1}
	for !lx.match(tRParen) {
		var id, weight uint16
		if !p.parseUint16(&id, "id") {
			return nil
		}
		if lx.match(tEquals) {
			if !p.parseUint16(&weight, "weight") {
				return nil
			}
			if weight == 0 {
				lx.syntaxError("weight can't be 0")
				return nil
			}
		}
		sel.ids = append(sel.ids, id)
		lx.match(tComma)
	}
	if len(sel.ids) <= 1 {
		lx.syntaxError("expecting at least 2 group members")
		return nil
	}
	return &ir.Ext{Op: sel}
}

func (p *actionParser) parseResult(lhs fieldRef, name, prereq string, mk func(dst field.Subfield) ir.ExtOp) ir.Action {
	lx := p.lx
	lx.next() // name
	lx.next() // (
	if !lx.match(tRParen) {
		lx.error("%s doesn't take any parameters", name)
		return nil
	}
	if err := typeCheckField(lhs, 1, true, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	if prereq != "" {
		p.addPrereq(prereq)
	}
	return &ir.Ext{Op: mk(lhs.resolved())}
}

func (p *actionParser) parseCheckPktLarger(lhs fieldRef) ir.Action {
	lx := p.lx
	if err := typeCheckField(lhs, 1, true, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	lx.next()
	if !lx.force(tLParen) {
		return nil
	}
	if _, ok := lx.forceInt(); !ok || !lx.force(tRParen) {
		return nil
	}
	return &ir.Ext{Op: noop{"check_pkt_larger"}}
}

func (p *actionParser) parseGetMACBind(name string) ir.Action {
	width := 32
	if name == "get_nd" {
		width = 128
	}
	lx := p.lx
	lx.force(tLParen)
	port, ok := p.parseFieldArg(0, false)
	if !ok || !lx.force(tComma) {
		return nil
	}
	ip, ok := p.parseFieldArg(width, false)
	if !ok || !lx.force(tRParen) {
		return nil
	}
	return &ir.Ext{Op: getMACBind{port: port.resolved(), ip: ip.resolved()}}
}

func (p *actionParser) parsePutMACBind(name string) ir.Action {
	width := 32
	if name == "put_nd" {
		width = 128
	}
	lx := p.lx
	lx.force(tLParen)
	if _, ok := p.parseFieldArg(0, false); !ok || !lx.force(tComma) {
		return nil
	}
	if _, ok := p.parseFieldArg(width, false); !ok || !lx.force(tComma) {
		return nil
	}
	if _, ok := p.parseFieldArg(48, false); !ok || !lx.force(tRParen) {
		return nil
	}
	return &ir.Ext{Op: noop{name}}
}

// parseLookupMACBind parses "dst = lookup_arp(port, ip, mac)" and
// lookup_nd, and, without the mac argument, lookup_arp_ip and lookup_nd_ip.
func (p *actionParser) parseLookupMACBind(lhs fieldRef, fn string) ir.Action {
	width := 32
	if strings.HasPrefix(fn, "lookup_nd") {
		width = 128
	}
	withMAC := !strings.HasSuffix(fn, "_ip")
	lx := p.lx
	if err := typeCheckField(lhs, 1, true, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	lx.next() // the function name
	lx.next() // (
	op := lookupMACBind{dst: lhs.resolved(), withMAC: withMAC}
	port, ok := p.parseFieldArg(0, false)
	if !ok || !lx.force(tComma) {
		return nil
	}
	ip, ok := p.parseFieldArg(width, false)
	if !ok {
		return nil
	}
	op.port, op.ip = port.resolved(), ip.resolved()
	if withMAC {
		if !lx.force(tComma) {
			return nil
		}
		mac, ok := p.parseFieldArg(48, false)
		if !ok {
			return nil
		}
		op.mac = mac.resolved()
	}
	if !lx.force(tRParen) {
		return nil
	}
	return &ir.Ext{Op: op}
}

func (p *actionParser) parseGetFDB(lhs fieldRef) ir.Action {
	lx := p.lx
	lx.next()
	lx.next()
	if lhs.bits != 0 {
		if err := typeCheckField(lhs, 32, true, p.scope); err != "" {
			lx.error("%s", err)
			return nil
		}
	}
	mac, ok := p.parseFieldArg(48, false)
	if !ok || !lx.force(tRParen) {
		return nil
	}
	return &ir.Ext{Op: getFDB{dst: lhs.resolved(), mac: mac.resolved()}}
}

func (p *actionParser) parseLookupFDB(lhs fieldRef) ir.Action {
	lx := p.lx
	lx.next()
	lx.next()
	if err := typeCheckField(lhs, 1, true, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	port, ok := p.parseFieldArg(0, false)
	if !ok || !lx.force(tComma) {
		return nil
	}
	mac, ok := p.parseFieldArg(48, false)
	if !ok || !lx.force(tRParen) {
		return nil
	}
	return &ir.Ext{Op: lookupFDB{dst: lhs.resolved(), port: port.resolved(), mac: mac.resolved()}}
}

// parseOptions parses "name = value, ..." up to ")" against table.
func (p *actionParser) parseOptions(table map[string]genOpt, kind string) ([]optValue, bool) {
	lx := p.lx
	var opts []optValue
	for !lx.match(tRParen) {
		if lx.tok.typ != tID {
			lx.syntaxError("")
			return nil, false
		}
		o, ok := table[lx.tok.s]
		if !ok {
			lx.syntaxError("expecting %s option name", kind)
			return nil, false
		}
		lx.next()
		if !lx.force(tEquals) {
			return nil, false
		}
		cs := newConstSet()
		if lx.match(tLCurly) {
			cs.curlies = true
			for !lx.match(tRCurly) {
				if !parseConst(lx, cs, nil) {
					return nil, false
				}
				lx.match(tComma)
			}
		} else if !parseConst(lx, cs, nil) {
			return nil, false
		}
		switch o.typ {
		case "host_id":
		case "str", "domains":
			if !cs.isString {
				lx.error("%s option %s requires string value.", kind, o.name)
				return nil, false
			}
		default:
			if cs.isString {
				lx.error("%s option %s requires numeric value.", kind, o.name)
				return nil, false
			}
		}
		opts = append(opts, optValue{opt: o, set: cs})
		lx.match(tComma)
	}
	return opts, true
}

func (p *actionParser) parsePutOpts(lhs fieldRef, fn string) ir.Action {
	lx := p.lx
	lx.next()
	lx.next()
	if err := typeCheckField(lhs, 1, true, p.scope); err != "" {
		lx.error("%s", err)
		return nil
	}
	table, kind := p.opts.dhcp, "DHCPv4"
	switch fn {
	case "put_dhcpv6_opts":
		table, kind = p.opts.dhcpv6, "DHCPv6"
	case "put_nd_ra_opts":
		table, kind = p.opts.ndRA, "IPv6 ND RA"
	}
	opts, ok := p.parseOptions(table, kind)
	if !ok {
		return nil
	}
	switch fn {
	case "put_dhcp_opts":
		found := false
		for _, o := range opts {
			found = found || o.opt.code == 0
		}
		if !found {
			lx.error("put_dhcp_opts requires offerip to be specified.")
			return nil
		}
	case "put_nd_ra_opts":
		p.addPrereq("ip6")
	}
	dst := lhs.resolved()
	name := ""
	if !field.IsRegister(dst.Field) {
		name = lhs.String()
	}
	return &ir.Ext{Op: putOpts{fn: fn, opts: opts, dst: dst, dstName: name, dhcp: fn != "put_nd_ra_opts"}}
}

func (p *actionParser) parseSetQueue() ir.Action {
	lx := p.lx
	if !lx.force(tLParen) {
		return nil
	}
	q, ok := lx.forceInt()
	if !ok || !lx.force(tRParen) {
		return nil
	}
	if q > 61440 {
		lx.error("Queue ID %d for set_queue is not in valid range %d to %d.", q, 0, 61440)
		return nil
	}
	return &ir.Ext{Op: noop{"set_queue"}}
}

func (p *actionParser) parseLog() ir.Action {
	lx := p.lx
	l := logOp{severity: "info"}
	if lx.match(tLParen) {
		for !lx.match(tRParen) {
			switch {
			case lx.matchID("verdict"):
				if !lx.force(tEquals) {
					return nil
				}
				switch {
				case lx.matchID("drop"):
					l.verdict = "drop"
				case lx.matchID("reject"):
					l.verdict = "reject"
				case lx.matchID("allow"):
					l.verdict = "allow"
				default:
					lx.syntaxError("unknown verdict")
					return nil
				}
			case lx.matchID("name"):
				if !lx.force(tEquals) {
					return nil
				}
				if lx.tok.typ != tString {
					lx.syntaxError("expecting string")
					return nil
				}
				if len(lx.tok.s) >= 64 {
					lx.syntaxError("name must be shorter than 64 characters")
					return nil
				}
				l.name = lx.tok.s
				lx.next()
			case lx.matchID("severity"):
				if !lx.force(tEquals) {
					return nil
				}
				if lx.tok.typ != tID || !isSeverity(lx.tok.s) {
					lx.syntaxError("unknown severity")
					return nil
				}
				l.severity = lx.tok.s
				lx.next()
			case lx.matchID("meter"):
				if !lx.force(tEquals) {
					return nil
				}
				if lx.tok.typ != tString {
					lx.syntaxError("expecting string")
					return nil
				}
				lx.next()
			default:
				lx.syntaxError("")
				return nil
			}
			lx.match(tComma)
		}
	}
	if l.verdict == "" {
		lx.syntaxError("expecting verdict")
		return nil
	}
	l.ingress = p.pipeline == pipelineIngress
	return &ir.Ext{Op: l}
}

func isSeverity(s string) bool {
	switch s {
	case "alert", "warning", "notice", "info", "debug":
		return true
	}
	return false
}

func (p *actionParser) parseSetMeter() ir.Action {
	lx := p.lx
	lx.force(tLParen)
	rate := uint64(0)
	if lx.tok.typ == tInteger && lx.tok.format == fmtDecimal {
		rate = lx.tok.value.Lo
	}
	lx.next()
	if lx.match(tComma) {
		lx.next()
	}
	lx.force(tRParen)
	if rate == 0 {
		lx.error("Rate %d for set_meter is not in valid.", rate)
		return nil
	}
	return &ir.Ext{Op: noop{"set_meter"}}
}

func (p *actionParser) parseTriggerEvent() ir.Action {
	lx := p.lx
	lx.force(tLParen)
	if !lx.matchID("event") {
		lx.syntaxError("Expecting 'event' option")
		return nil
	}
	if !lx.force(tEquals) {
		return nil
	}
	if lx.tok.typ != tString || len(lx.tok.s) >= 64 {
		lx.syntaxError("Expecting string")
		return nil
	}
	table, ok := p.opts.events[lx.tok.s]
	if !ok {
		lx.syntaxError("Unknown event '%d'", -1)
		return nil
	}
	lx.next()
	lx.match(tComma)
	if _, ok := p.parseOptions(table, "empty_lb_backends"); !ok {
		return nil
	}
	return &ir.Ext{Op: noop{"trigger_event"}}
}

func (p *actionParser) parseBindVport() ir.Action {
	lx := p.lx
	if !lx.force(tLParen) {
		return nil
	}
	if lx.tok.typ != tString {
		lx.syntaxError("expecting port name string")
		return nil
	}
	lx.next()
	if !lx.force(tComma) {
		return nil
	}
	if _, ok := p.parseFieldArg(0, false); !ok {
		return nil
	}
	lx.force(tRParen)
	return &ir.Ext{Op: noop{"bind_vport"}}
}

// parseCompose parses the actions that build a new packet from the current
// one and run nested actions on it.
func (p *actionParser) parseCompose(name string) ir.Action {
	prereq := map[string]string{
		"arp": "ip4", "icmp4": "ip4", "icmp4_error": "ip4", "icmp6": "ip6", "icmp6_error": "ip6",
		"tcp_reset": "tcp", "sctp_abort": "sctp", "nd_na": "nd_ns", "nd_na_router": "nd_ns",
		"nd_ns": "ip6", "reject": "",
	}[name]
	body := p.parseNested(prereq, p.scope)
	if p.lx.err != nil {
		return nil
	}
	return &ir.Ext{Op: compose{kind: name, body: body}}
}
