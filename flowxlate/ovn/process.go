package ovn

import (
	"fmt"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// Output is a packet leaving the logical network through a logical port.
type Output struct {
	Port string    // the Port_Binding's logical_port
	Key  field.Key // the packet's fields as it leaves
}

// ProcessResult is what the logical pipeline does with one packet.
type ProcessResult struct {
	Outputs []Output
	// Mask has every bit of the packet the pipeline read, the logical
	// input port's register included: all packets that agree with this
	// one on those bits are processed the same way.
	Mask   field.Mask
	Errors []string
	// Conntrack says the pipeline consulted connection tracking. The
	// answers came from RunOptions, as ovn-trace's do, so a datapath
	// must not act on the result without real conntrack.
	Conntrack bool
}

// ProcessPacket runs a packet that entered the logical network through
// logical port inport (a Port_Binding's logical_port) through the ingress
// pipeline of that port's datapath and everything it leads to. pkt holds
// the packet's header fields; its registers and metadata must be zero.
// TTL decrements act as the datapath's (interp.Interp.DatapathTTL), since
// the result is what the datapath does.
func (t *Translator) ProcessPacket(inport string, pkt field.Key, opts RunOptions) (*ProcessResult, error) {
	if t.prog == nil {
		return nil, fmt.Errorf("no logical pipeline loaded")
	}
	p := t.w.ports[inport]
	if p == nil || p.dp == nil {
		return nil, fmt.Errorf("logical port %q is not in the Southbound database", inport)
	}
	pkt.Set(field.Reg(regLogInport), field.U64(uint64(p.key)))
	env := newEnv(t.w, opts)
	res := interp.New(t.prog, env).DatapathTTL().Decide(pkt, func(c ir.ExecContext) {
		c.At(p.dp.pipeline(pipelineIngress), 0).Lookup()
	})
	return &ProcessResult{Outputs: env.outputs, Mask: res.Mask, Errors: res.Errors, Conntrack: env.ctUsed}, nil
}
