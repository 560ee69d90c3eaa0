package ovn

import (
	"fmt"
	"net/netip"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// LBDst is a load-balancer backend to prefer when ct_lb picks one.
type LBDst struct {
	Addr netip.Addr
	Port uint16
}

// RunOptions say how the environment answers what the logical pipeline
// cannot decide by itself. They are ovn-trace's options.
type RunOptions struct {
	// CTStates are the ct_state values that successive ct actions return
	// (each a set of field.CS* bits); after they run out, est|trk.
	CTStates []uint32
	// LBDst, if set, is the backend ct_lb chooses (once), as --lb-dst.
	LBDst *LBDst
	// SelectID is the member select() chooses, if it is one of them.
	SelectID uint16
}

// Env is the OVN environment of one packet's run: it knows the Southbound
// state (ports, multicast groups, MAC bindings) and answers the
// interpreter's output and conntrack questions as ovn-trace does.
type Env struct {
	w         *world
	opts      RunOptions
	ctIdx     int
	lbDstUsed bool

	// What ProcessPacket needs beyond a trace: outputs by the logical
	// port's real name, and whether conntrack was consulted.
	outputs []Output
	ctUsed  bool

	// datapath: the run is a datapath's (Translator.Decide and Resume):
	// the physical layer's register loads and clears happen as
	// ovn-controller's flows do them, with zones, and outputs are
	// delivered by the logical port's real name.
	datapath bool
	zones    Zones
}

func newEnv(w *world, opts RunOptions) *Env { return &Env{w: w, opts: opts} }

func newDatapathEnv(w *world, zones Zones) *Env { return &Env{w: w, datapath: true, zones: zones} }

// loadZones loads the zone registers for a packet entering p's datapath
// through p, or leaving through p, as ovn-controller's put_zones_ofpacts
// does: p's zone into reg13, the datapath's DNAT and SNAT zones into reg11
// and reg12, each only if it has one. ctOnly loads reg13 alone, as a
// multicast group's output to a local port does.
func (e *Env) loadZones(k *field.Key, p *port, ctOnly bool) {
	load := func(reg int, name string) {
		if z := e.zones[name]; z != 0 {
			k.Set(field.Reg(reg), field.U64(uint64(z)))
		}
	}
	load(regLogCTZone, p.name)
	if !ctOnly && p.dp != nil {
		load(regLogDNATZone, p.dp.uuid+"_dnat")
		load(regLogSNATZone, p.dp.uuid+"_snat")
	}
}

// dp returns the datapath whose pipeline c runs in.
func (e *Env) dp(c ir.ExecContext) *datapath {
	if d := e.w.dpByKey[c.Pipeline().Domain]; d != nil {
		return d
	}
	return &datapath{world: e.w}
}

// nextCTState returns the state the next ct action sees and the comment
// that says where it came from.
func (e *Env) nextCTState() (uint32, string) {
	if e.ctIdx < len(e.opts.CTStates) {
		s := e.opts.CTStates[e.ctIdx]
		e.ctIdx++
		return s, ""
	}
	return field.CSEst | field.CSTrk, " /* default (use --ct to customize) */"
}

func (e *Env) findVIP(c ir.ExecContext) (lbVIP, bool) {
	ct4 := read(c, field.CTNwDst)
	ct6 := read(c, field.CTIPv6Dst)
	for _, v := range e.w.vips {
		if !v.ipv6 && v.addr == ct4 || v.ipv6 && v.addr == ct6 {
			return v, true
		}
	}
	return lbVIP{}, false
}

func flagSet(c ir.ExecContext, bit int) bool {
	return c.Read(field.Subfield{Field: field.Reg(regLogFlags), Ofs: bit, Bits: 1}).Lo == 1
}

// Output implements logical output: from ingress into the egress pipeline
// of the same datapath (once per member for a multicast group), from
// egress out of the port, or through a patch port into the peer
// datapath's ingress pipeline.
func (e *Env) Output(c ir.ExecContext) {
	dp := e.dp(c)
	outKey := uint32(read(c, field.Reg(regLogOutport)).Lo)
	if outKey == 0 {
		c.Fail("*** output to null logical port")
		return
	}
	p := dp.portsByKey[outKey]
	g := dp.mcgroups[outKey]
	outName := "(unnamed)"
	switch {
	case p != nil:
		outName = p.friendly
	case g != nil:
		outName = g.name
	default:
		c.Fail(fmt.Sprintf("*** unknown port or multicast group %d", outKey))
	}

	if c.Pipeline().Stage == pipelineEgress {
		typ := ""
		if p != nil {
			typ = p.typ
		}
		if c.Tracing() {
			c.Trace(trace.Output, tracef(c, "/* output to \"%s\", type \"%s\" */", outName, typ))
		}
		if p != nil && p.peer != nil {
			peer := p.peer
			k := *c.Key()
			if e.datapath {
				// ovn-controller's patch port flow: ct_clear, the
				// zones, flags and logical registers cleared, the
				// peer's zones loaded.
				field.ClearConntrack(&k)
				for i := 0; i < numLogRegs; i++ {
					k.Set(field.Reg(i), field.Value{})
				}
				for _, r := range []int{regLogFlags, regLogDNATZone, regLogSNATZone, regLogCTZone} {
					k.Set(field.Reg(r), field.Value{})
				}
				e.loadZones(&k, peer, false)
			}
			k.Set(field.Reg(regLogInport), field.U64(uint64(peer.key)))
			k.Set(field.Reg(regLogOutport), field.Value{})
			c.WithKey(&k).Sub(trace.Pipeline, tracef(c, "ingress(dp=\"%s\", inport=\"%s\")", peer.dp.friendly, peer.friendly)).
				At(peer.dp.pipeline(pipelineIngress), 0).Lookup()
			return
		}
		if c.Tracing() {
			c.Trace(trace.Modify, tracef(c, "output(\"%s\")", outName))
		}
		switch {
		case !e.datapath:
			c.Deliver(outName)
		case p != nil:
			c.Deliver(p.name)
		}
		if p != nil {
			e.outputs = append(e.outputs, Output{Port: p.name, Key: *c.Key()})
		}
		return
	}

	egress := *c.Key()
	if e.datapath {
		// ovn-controller clears the logical registers on the way to
		// the egress pipeline but keeps the flags and zones, and loads
		// the output port's zones (below).
		for i := 0; i < numLogRegs; i++ {
			egress.Set(field.Reg(i), field.Value{})
		}
	} else {
		// ovn-trace clears every register but the ports.
		for i := 0; i < field.NumRegs; i++ {
			if i != regLogInport && i != regLogOutport {
				egress.Set(field.Reg(i), field.Value{})
			}
		}
	}
	inKey := uint32(read(c, field.Reg(regLogInport)).Lo)
	inName := dp.portName(inKey)
	loopback := flagSet(c, flagAllowLoopback)
	egressID := dp.pipeline(pipelineEgress)

	if g != nil {
		mc := c.Sub(trace.Pipeline, tracef(c, "multicast(dp=\"%s\", mcgroup=\"%s\")", dp.friendly, g.name))
		for _, m := range g.ports {
			n := mc.WithKey(&egress).Sub(trace.Pipeline, tracef(c, "egress(dp=\"%s\", inport=\"%s\", outport=\"%s\")", dp.friendly, inName, m.friendly))
			if m.key != inKey || loopback {
				n.SetAlwaysIndent()
				egress.Set(field.Reg(regLogOutport), field.U64(uint64(m.key)))
				if e.datapath {
					e.loadZones(&egress, m, true)
				}
				n.At(egressID, 0).Lookup()
			} else {
				n.Trace(trace.Output, "/* omitting output because inport == outport && !flags.loopback */")
			}
		}
		return
	}

	if p != nil && p.typ == "chassisredirect" {
		if p.distributed == nil {
			c.Fail(fmt.Sprintf("*** output to type \"%s\" port \"%s\" with no or invalid distributed port", p.typ, outName))
			return
		}
		c.Trace(trace.Output, tracef(c, "/* Replacing type \"%s\" outport \"%s\" with distributed port \"%s\". */",
			p.typ, p.friendly, p.distributed.friendly))
		p = p.distributed
		outName = p.friendly
		egress.Set(field.Reg(regLogOutport), field.U64(uint64(p.key)))
	}

	if p != nil && p.key != inKey || loopback {
		if e.datapath && p != nil {
			e.loadZones(&egress, p, false)
		}
		c.WithKey(&egress).Sub(trace.Pipeline, tracef(c, "egress(dp=\"%s\", inport=\"%s\", outport=\"%s\")", dp.friendly, inName, outName)).
			At(egressID, 0).Lookup()
		return
	}
	c.Trace(trace.Output, "/* omitting output because inport == outport && !flags.loopback */")
}

// EnterPipeline titles a jump between the ingress and egress pipelines.
func (e *Env) EnterPipeline(c ir.ExecContext, to ir.PipelineID) string {
	dp := e.dp(c)
	if to.Stage == pipelineIngress {
		return fmt.Sprintf("ingress(dp=\"%s\", inport=\"%s\")", dp.friendly, dp.portName(uint32(read(c, field.Reg(regLogInport)).Lo)))
	}
	return fmt.Sprintf("egress(dp=\"%s\", outport=\"%s\")", dp.friendly, dp.portName(uint32(read(c, field.Reg(regLogOutport)).Lo)))
}

// Conntrack answers as ovn-trace does: connection state from RunOptions
// (est|trk by default), DNAT and SNAT to the addresses the action names,
// load balancing to a chosen backend.
func (e *Env) Conntrack(c ir.ExecContext, ct *ir.CT) (string, bool) {
	e.ctUsed = true
	k := c.Key()
	switch ct.Flavor {
	case "ct_next":
		state, comment := e.nextCTState()
		k.Set(field.CTState, field.U64(uint64(state)))
		return fmt.Sprintf("ct_next(ct_state=%s%s)", field.FormatCTStateFlags(state, "|"), comment), true
	case "ct_commit":
		return "", true
	case "ct_commit_nat":
		text := "ct_commit_nat /* assuming no un-nat entry, so no change */"
		return e.ensureTracked(c, text), true
	case "ct_lb", "ct_lb_mark":
		return e.loadBalance(c, ct), true
	}
	// ct_dnat, ct_snat and their _in_czone forms.
	isDst := ct.Flavor == "ct_dnat" || ct.Flavor == "ct_dnat_in_czone"
	inCZone := ct.Flavor == "ct_dnat_in_czone" || ct.Flavor == "ct_snat_in_czone"
	if !isDst && e.dp(c).hasLocalL3Gateway && !ct.NAT.AddrSet {
		// "ct_snat;" has no visible effect in a gateway router.
		return "", false
	}
	dir := "src"
	if isDst {
		dir = "dst"
	}
	text := fmt.Sprintf("ct_%cnat", dir[0])
	if inCZone {
		text += "in_czone"
	}
	if ct.NAT.AddrSet {
		var id field.ID
		if ct.NAT.IPv6 {
			id = map[bool]field.ID{true: field.IPv6Dst, false: field.IPv6Src}[isDst]
			text += fmt.Sprintf("(ip6.%s=%s)", dir, field.FormatIPv6Addr(ct.NAT.Addr))
		} else {
			id = map[bool]field.ID{true: field.IPv4Dst, false: field.IPv4Src}[isDst]
			text += fmt.Sprintf("(ip4.%s=%s)", dir, field.FormatIPv4Addr(ct.NAT.Addr))
		}
		k.Set(id, ct.NAT.Addr)
		bit := uint64(field.CSSrcNAT)
		if isDst {
			bit = field.CSDstNAT
		}
		k.Set(field.CTState, field.U64(k.Get(field.CTState).Lo|bit))
	} else {
		text += fmt.Sprintf(" /* assuming no un-%cnat entry, so no change */", dir[0])
	}
	return e.ensureTracked(c, text), true
}

// ensureTracked gives an untracked packet a conntrack state: ct(nat)
// implies ct().
func (e *Env) ensureTracked(c ir.ExecContext, text string) string {
	k := c.Key()
	if k.Get(field.CTState).Lo&field.CSTrk == 0 {
		state, comment := e.nextCTState()
		k.Set(field.CTState, field.U64(k.Get(field.CTState).Lo|uint64(state)))
		text += comment
	}
	return text
}

func (e *Env) loadBalance(c ir.ExecContext, ct *ir.CT) string {
	k := c.Key()
	name := ct.Flavor
	et := read(c, field.EthType).Lo
	if et != field.EthTypeIPv4 && et != field.EthTypeIPv6 {
		return name
	}
	v6 := et == field.EthTypeIPv6
	var dst *ir.Backend
	if len(ct.NAT.Backends) > 0 {
		for i := range ct.NAT.Backends {
			b := &ct.NAT.Backends[i]
			if b.IPv6 != v6 {
				continue
			}
			if e.opts.LBDst != nil && !e.lbDstUsed && e.lbDstMatches(b) {
				e.lbDstUsed = true
				dst = b
				break
			}
			if dst == nil {
				// ovn-trace picks at random; any backend is a valid
				// answer, so pick the first for repeatable traces.
				dst = b
			}
		}
		if dst == nil {
			c.Fail("*** no load balancing destination (use --lb-dst)")
		}
	} else if e.opts.LBDst != nil && !e.lbDstUsed && e.opts.LBDst.Addr.Is6() == v6 && !e.opts.LBDst.Addr.Is4In6() {
		e.lbDstUsed = true
		dst = &ir.Backend{IPv6: v6, Addr: addrValue(e.opts.LBDst.Addr), Port: e.opts.LBDst.Port}
	}
	if dst != nil {
		if v6 {
			k.Set(field.CTIPv6Dst, k.Get(field.IPv6Dst))
			k.Set(field.IPv6Dst, dst.Addr)
		} else {
			k.Set(field.CTNwDst, k.Get(field.IPv4Dst))
			k.Set(field.IPv4Dst, dst.Addr)
		}
		k.Set(field.CTTpDst, k.Get(field.TCPDst))
		if dst.Port != 0 {
			k.Set(field.TCPDst, field.U64(uint64(dst.Port)))
		}
		k.Set(field.CTState, field.U64(k.Get(field.CTState).Lo|field.CSDstNAT))
	}
	state, comment := e.nextCTState()
	k.Set(field.CTState, field.U64(k.Get(field.CTState).Lo|uint64(state)))
	return name + comment
}

func (e *Env) lbDstMatches(b *ir.Backend) bool {
	return b.Addr == addrValue(e.opts.LBDst.Addr)
}

func addrValue(a netip.Addr) field.Value {
	if a.Is4() {
		b := a.As4()
		return field.FromBytes(b[:])
	}
	b := a.As16()
	return field.FromBytes(b[:])
}

// tracef formats a trace line, or returns "" without formatting when the
// run records no trace.
func tracef(c ir.ExecContext, format string, args ...any) string {
	if !c.Tracing() {
		return ""
	}
	return fmt.Sprintf(format, args...)
}
