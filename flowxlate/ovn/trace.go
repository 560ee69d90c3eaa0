package ovn

import (
	"fmt"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// TraceRequest is what ovn-trace is asked: a packet, described by a
// microflow, entering a logical datapath.
type TraceRequest struct {
	// Datapath names the logical switch or router (name, external_ids
	// name2, or a UUID prefix). Empty means the datapath of the
	// microflow's inport.
	Datapath  string
	Microflow string
	Options   RunOptions
}

// TraceResult is what a trace found.
type TraceResult struct {
	Flow    string    // the parsed packet, in Open vSwitch flow syntax
	Packet  field.Key // the parsed packet
	Trace   []*trace.Node
	Outputs []interp.Delivery
	Mask    field.Mask // the bits of Packet the pipeline read
	Errors  []string
}

// Trace runs the packet a microflow describes through the logical pipeline.
func (t *Translator) Trace(req TraceRequest) (*TraceResult, error) {
	if t.prog == nil {
		return nil, fmt.Errorf("no logical pipeline loaded")
	}
	dp, err := t.traceDatapath(req)
	if err != nil {
		return nil, err
	}
	key, err := t.parseMicroflow(req.Microflow, dp)
	if err != nil {
		return nil, fmt.Errorf("error parsing flow: %w", err)
	}
	inKey := uint32(key.Get(field.Reg(regLogInport)).Lo)
	inName := "(unnamed)"
	if p := dp.portsByKey[inKey]; p != nil {
		inName = p.friendly
	}
	env := newEnv(t.w, req.Options)
	res := interp.New(t.prog, env).Run(key, func(c ir.ExecContext) {
		c.Sub(trace.Pipeline, fmt.Sprintf("ingress(dp=\"%s\", inport=\"%s\")", dp.friendly, inName)).
			At(dp.pipeline(pipelineIngress), 0).Lookup()
	})
	return &TraceResult{
		Flow:    FormatFlow(&key),
		Packet:  key,
		Trace:   res.Trace,
		Outputs: res.Deliveries(),
		Mask:    res.Mask,
		Errors:  res.Errors,
	}, nil
}

func (t *Translator) traceDatapath(req TraceRequest) (*datapath, error) {
	if req.Datapath != "" {
		dp := t.w.lookupDatapath(req.Datapath)
		if dp == nil {
			return nil, fmt.Errorf("unknown datapath %q", req.Datapath)
		}
		return dp, nil
	}
	e, err := parseExprString(req.Microflow, t.st, worldNames{t.w}, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("error parsing flow: %w", err)
	}
	inports := map[string]bool{}
	findInports(e, inports)
	switch len(inports) {
	case 0:
		return nil, fmt.Errorf("error parsing flow: flow match expression does not match on inport")
	case 1:
	default:
		return nil, fmt.Errorf("error parsing flow: flow match expression matches on multiple inports")
	}
	for name := range inports {
		p := t.w.ports[name]
		if p == nil {
			return nil, fmt.Errorf("unknown port %q", name)
		}
		return p.dp, nil
	}
	panic("unreachable")
}

func findInports(e *expr, out map[string]bool) {
	switch e.kind {
	case eCmp:
		if e.sym.name == "inport" && e.op == rEq {
			out[e.str] = true
		}
	case eAnd, eOr:
		for _, s := range e.subs {
			findInports(s, out)
		}
	}
}
