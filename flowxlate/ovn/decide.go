package ovn

import (
	"fmt"
	"maps"
	"slices"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// Zones are the conntrack zones ovn-controller assigns on this chassis, by
// its names for them (controller/ovn-controller.c update_ct_zones in OVN
// 23.03, which Debian ships): a logical port's name (Port_Binding
// logical_port) for that port's zone, and "<Datapath_Binding UUID>_dnat" and
// "<Datapath_Binding UUID>_snat" for a datapath's DNAT and SNAT zones (23.03
// gives every local datapath both, switches included). A name with no zone,
// or zone 0, loads nothing, as ovn-controller's physical flows load nothing
// for it.
type Zones map[string]uint16

// SetZones sets the zones Decide and Resume load into the zone registers.
// It copies z. Like Apply, it must not run beside a Decide or Resume.
func (t *Translator) SetZones(z Zones) { t.zones = maps.Clone(z) }

// ZoneDatapath is a datapath as zone assignment needs it.
type ZoneDatapath struct {
	UUID string // Datapath_Binding UUID: its zones are UUID_dnat, UUID_snat
	// SNATZone is the zone external_ids:snat-ct-zone asks for, 0 for none.
	SNATZone uint16
}

// ZoneDatapaths lists every datapath of the Southbound, by UUID.
func (t *Translator) ZoneDatapaths() []ZoneDatapath {
	out := make([]ZoneDatapath, 0, len(t.w.datapaths))
	for _, uuid := range slices.Sorted(maps.Keys(t.w.datapaths)) {
		out = append(out, ZoneDatapath{UUID: uuid, SNATZone: uint16(t.w.datapaths[uuid].snatZoneReq)})
	}
	return out
}

// CTCall is a conntrack action as the datapath must run it.
type CTCall struct {
	Zone   uint16
	Commit bool
	Force  bool
	// NAT, if not nil, is the translation (shared with the pipeline: do
	// not modify). Kind NATAuto applies the connection's existing
	// binding; Backends (with HashFields) is a load balancer's choice.
	NAT *ir.NAT
	// Mark and Label are the values a commit writes into the
	// connection's ct_mark and ct_label, under MarkMask and LabelMask
	// (zero: no write).
	Mark, MarkMask   uint32
	Label, LabelMask field.Value
	// Flavor is OVN's name of the action ("ct_next", "ct_commit",
	// "ct_lb_mark", "ct_dnat", "ct_snat_to_vip", ...).
	Flavor string
}

func resolveCT(c *interp.CTCall) CTCall {
	return CTCall{Zone: c.Zone, Commit: c.CT.Commit, Force: c.CT.Force, NAT: c.CT.NAT,
		Mark: c.Mark, MarkMask: c.MarkMask, Label: c.Label, LabelMask: c.LabelMask, Flavor: c.CT.Flavor}
}

// Step is one thing the datapath does to the packet, in order: an output
// to logical port Port (a Port_Binding's logical_port), or, when CT is not
// nil, a conntrack commit that does not recirculate. Key is the packet at
// that moment; its registers and metadata are pipeline state, not packet.
type Step struct {
	Port string
	CT   *CTCall
	Key  field.Key
}

// Freeze is the decision's end at a recirculating conntrack action: the
// datapath runs CT on Key (the packet as it is there) and recirculates; a
// miss after that resumes Frozen (Translator.Resume). Frozen is comparable:
// equal states may share a recirculation id.
type Freeze struct {
	CT     CTCall
	Key    field.Key
	Frozen interp.Frozen
}

// Decision is what the datapath does with one packet in one pass.
type Decision struct {
	// Steps are outputs and conntrack commits in pipeline order. In the
	// datapath's action list they all go before the freeze's ct: an
	// output the pipeline made after the freeze is another copy of the
	// packet, independent of it (a commit after it makes the decision
	// Unsupported).
	Steps []Step
	// Freeze, when the pipeline reached one recirculating conntrack
	// action, is where this pass ends; nil when the packet does not
	// recirculate. Freezes has every freeze, in order; Freeze is its
	// only element when there is exactly one.
	Freeze  *Freeze
	Freezes []Freeze
	// Mask has every bit of the packet the decision read (the logical
	// input port's register and, when resumed, the conntrack fields
	// included): every packet that agrees with this one on it, in the
	// same pass, gets the same decision.
	Mask   field.Mask
	Errors []string
	// Unsupported, when not empty, says why one datapath action list
	// cannot carry the decision (several freezes, a fork after a
	// freeze, a commit after it): it must not be cached. Steps and
	// Freezes still say what the pipeline does.
	Unsupported string
}

// Decide runs a packet that entered the logical network through logical
// port inport as a datapath does: as ProcessPacket, but with the zone
// registers loaded (SetZones) at every datapath entry as ovn-controller's
// physical flows load them, a patch port crossing clearing conntrack state,
// and conntrack left to the datapath (interp.Interp.Freezing): the run
// stops at a recirculating conntrack action with a Freeze.
func (t *Translator) Decide(inport string, pkt field.Key) (*Decision, error) {
	if t.prog == nil {
		return nil, fmt.Errorf("no logical pipeline loaded")
	}
	p := t.w.ports[inport]
	if p == nil || p.dp == nil {
		return nil, fmt.Errorf("logical port %q is not in the Southbound database", inport)
	}
	env := newDatapathEnv(t.w, t.zones)
	pkt.Set(field.Reg(regLogInport), field.U64(uint64(p.key)))
	env.loadZones(&pkt, p, false)
	res := interp.New(t.prog, env).DatapathTTL().Freezing().Decide(pkt, func(c ir.ExecContext) {
		c.At(p.dp.pipeline(pipelineIngress), 0).Lookup()
	})
	return decisionOf(res), nil
}

// Resume goes on from a Freeze of Decide or Resume once the datapath has
// run its conntrack action: pkt is the packet as the datapath hands it
// back (headers after any NAT, conntrack fields filled in; registers and
// metadata come from fr). It may end in another freeze.
func (t *Translator) Resume(fr interp.Frozen, pkt field.Key) (*Decision, error) {
	if t.prog == nil {
		return nil, fmt.Errorf("no logical pipeline loaded")
	}
	if t.prog.Pipelines[fr.Pipeline] == nil {
		return nil, fmt.Errorf("frozen state names pipeline %s, which the logical pipeline does not have", fr.Pipeline)
	}
	env := newDatapathEnv(t.w, t.zones)
	res := interp.New(t.prog, env).DatapathTTL().Resume(pkt, fr)
	return decisionOf(res), nil
}

func decisionOf(res *interp.Result) *Decision {
	d := &Decision{Mask: res.Mask, Errors: res.Errors}
	for _, s := range res.Steps {
		st := Step{Port: s.Port, Key: s.Key}
		if s.CT != nil {
			call := resolveCT(s.CT)
			st.CT = &call
		}
		d.Steps = append(d.Steps, st)
	}
	for _, f := range res.Freezes {
		d.Freezes = append(d.Freezes, Freeze{CT: resolveCT(&f.CT), Key: f.Key, Frozen: f.Frozen})
	}
	switch {
	case len(res.Freezes) > 1:
		d.Unsupported = fmt.Sprintf("the packet reaches %d recirculating conntrack actions (copies through several), and one action list recirculates once", len(res.Freezes))
	case res.Forked:
		d.Unsupported = "live actions follow a recirculating conntrack action on the same path (a ct fork)"
	case len(res.Freezes) == 1:
		for _, s := range res.Steps[res.Freezes[0].Step:] {
			if s.CT != nil {
				d.Unsupported = "a conntrack commit follows the recirculating conntrack action"
				break
			}
		}
	}
	if len(d.Freezes) == 1 {
		d.Freeze = &d.Freezes[0]
	}
	return d
}
