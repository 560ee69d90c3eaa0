// Package interp is the reference interpreter for flowxlate programs: it runs
// one packet through an ir.Program, records a trace, the packets it
// delivers, and the megaflow mask — every bit of the packet the run read, so
// that every packet that agrees on those bits gets the same treatment.
//
// The interpreter knows nothing of any front end. What the generic pipeline
// cannot decide (where an output goes, what connection tracking says) it asks
// the Env; front-end operations come as ir.ExtOp values. An Interp is
// immutable and safe for concurrent runs; each Run has its own state.
package interp

import (
	"fmt"
	"strings"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// Env is the environment a packet runs in.
type Env interface {
	// Output handles ir.Output for the packet of c.
	Output(c ir.ExecContext)
	// Conntrack handles ir.CT. For a recirculating ct, c runs on a copy of
	// the packet; Conntrack fills in its conntrack fields (and applies NAT)
	// and returns the text of the trace node under which the lookup at
	// ct.Table runs, or proceed=false to end that path. For a commit
	// without recirculation c is the packet itself and text, if not
	// empty, is traced as an action note.
	Conntrack(c ir.ExecContext, ct *ir.CT) (text string, proceed bool)
}

// PipelineNamer is implemented by environments that title the trace node
// for a jump to another pipeline (ir.Next with a Stage).
type PipelineNamer interface {
	EnterPipeline(c ir.ExecContext, to ir.PipelineID) string
}

// MaxDepth bounds nested table lookups in one run, so that a loop in the
// pipeline (a patch-port cycle, a rule that resubmits to itself) ends with an
// error instead of exhausting the stack. OVS bounds resubmit depth at 64;
// logical pipelines of routers and switches chained through patch ports
// nest deeper, one level per table.
const MaxDepth = 1024

// Interp runs packets through a program.
type Interp struct {
	prog *ir.Program
	env  Env
	// stopAtTTLExpiry: see DatapathTTL.
	stopAtTTLExpiry bool
	// freezing: see Freezing.
	freezing bool
}

// New returns an interpreter for prog in env.
func New(prog *ir.Program, env Env) *Interp { return &Interp{prog: prog, env: env} }

// DatapathTTL returns an interpreter whose TTL decrements act as a
// datapath's: decrementing a TTL of 1 or 0 ends the rule's actions there, as
// Open vSwitch's dec_ttl does (it hands the packet to the controller
// instead), so no copy leaves by that path. The slow path decides with it,
// for its decisions are what the datapath then does. Without it a TTL of 1
// becomes 0 and the packet goes on, as ovn-trace shows it.
func (in *Interp) DatapathTTL() *Interp {
	c := *in
	c.stopAtTTLExpiry = true
	return &c
}

// Freezing returns an interpreter that stops at conntrack as a datapath
// does, instead of asking Env.Conntrack: the slow path decides with it, for
// only the datapath's conntrack knows a connection's state.
//
// A recirculating ir.CT ends its path with a Freeze: the ct call the
// datapath must make on the packet as it is there, and the Frozen state a
// Resume goes on from once the datapath has filled in the packet's
// conntrack fields. The actions after the ct in the same action list still
// run, on the packet ct left untracked (OpenFlow's ct(table=N) forks); any
// output, ct or freeze among them sets Result.Forked.
//
// A conntrack commit that does not recirculate becomes a Step, in order
// among the outputs, with its zone and its ct_mark and ct_label writes
// evaluated on the packet (CTCall).
func (in *Interp) Freezing() *Interp {
	c := *in
	c.freezing = true
	return &c
}

// Delivery is a packet leaving the pipeline.
type Delivery struct {
	Port string
	Key  field.Key
}

// CTCall is a conntrack action as a datapath runs it: the action, with its
// zone and the ct_mark and ct_label writes of its commit evaluated on the
// packet. CT.Exec may only write ct_mark and ct_label; Mark and Label hold
// the values written, under MarkMask and LabelMask (0: not written).
type CTCall struct {
	CT             *ir.CT
	Zone           uint16
	Mark, MarkMask uint32
	Label          field.Value
	LabelMask      field.Value
}

// Step is one thing that happens to the packet, in pipeline order: an
// output to Port, or (CT not nil) a conntrack commit that does not
// recirculate. Key is the packet at that moment.
type Step struct {
	Port string
	CT   *CTCall
	Key  field.Key
}

// Frozen is where a run that stopped at a recirculating conntrack action
// goes on, and with what pipeline state. It is comparable: the slow path
// keys recirculation ids by it, so that the same state always gets the
// same id.
//
// State holds the run's metadata and registers at the freeze; every other
// field is zero. Stack is the value stack the lookup at Table starts with,
// 16 bytes a value; the interpreter scopes a stack to one rule's action
// list, which a freeze leaves, so it is empty today (Resume refuses any
// other).
type Frozen struct {
	Pipeline ir.PipelineID
	Table    int
	State    field.Key
	Stack    string
}

// Freeze is a run stopping at a recirculating conntrack action (Freezing):
// the ct the datapath must run on Key, the packet as it is at that point
// (headers after the rewrites so far; its metadata and registers are
// pipeline state, also in Frozen), then where to go on. Step is the
// number of Steps recorded before it.
type Freeze struct {
	CT     CTCall
	Key    field.Key
	Frozen Frozen
	Step   int
}

// Result is what one run produced. Mask has every bit of the packet the
// run read or wrote (see ctx.Write).
type Result struct {
	Trace []*trace.Node
	Mask  field.Mask
	// Steps are the outputs, and in Freezing mode the conntrack commits,
	// in the order the pipeline made them.
	Steps []Step
	// Freezes are the paths that stopped at a recirculating ct
	// (Freezing mode only), in order.
	Freezes []Freeze
	// Forked says an output, ct or freeze happened after a recirculating
	// ct in the same action list (see Freezing).
	Forked bool
	Errors []string
}

// Deliveries returns the outputs among r's steps, in order.
func (r *Result) Deliveries() []Delivery {
	var out []Delivery
	for _, s := range r.Steps {
		if s.CT == nil {
			out = append(out, Delivery{Port: s.Port, Key: s.Key})
		}
	}
	return out
}

// Run runs start with a context on key, positioned at no pipeline; start
// typically adds a pipeline node and calls At(...).Lookup().
func (in *Interp) Run(key field.Key, start func(c ir.ExecContext)) *Result {
	r := &run{in: in}
	root := &trace.Node{}
	k := key
	start(&ctx{run: r, key: &k, node: root, table: -1})
	r.res.Trace = root.Children
	return &r.res
}

// Decide is Run without a trace: the outputs, mask and errors only, for
// the slow path, where a trace's text would cost more than the decision.
func (in *Interp) Decide(key field.Key, start func(c ir.ExecContext)) *Result {
	r := &run{in: in}
	k := key
	start(&ctx{run: r, key: &k, table: -1})
	return &r.res
}

// Resume goes on from a Freeze once the datapath has run the conntrack
// action: key is the packet as the datapath hands it back (headers after
// any NAT, conntrack fields filled in), fr the frozen state. The run starts
// with a lookup in fr.Table of fr.Pipeline, with fr.State's metadata and
// registers laid over key's. Like Decide it records no trace, and the
// result's mask has every bit of key the run read (the conntrack fields
// among them). A resumed run may freeze again; Resume runs in Freezing
// mode whether or not in does.
func (in *Interp) Resume(key field.Key, fr Frozen) *Result {
	fz := in.Freezing()
	r := &run{in: fz}
	if fr.Stack != "" {
		r.res.Errors = append(r.res.Errors, "*** frozen state carries a value stack, which this interpreter never freezes")
		return &r.res
	}
	k := key
	layState(&k, &fr.State)
	c := &ctx{run: r, key: &k, table: -1}
	c.At(fr.Pipeline, fr.Table).Lookup()
	return &r.res
}

// layState replaces k's pipeline state (metadata and registers) by st's.
func layState(k, st *field.Key) {
	k.Set(field.Metadata, st.Get(field.Metadata))
	for i := 0; i < field.NumRegs; i++ {
		k.Set(field.Reg(i), st.Get(field.Reg(i)))
	}
}

// pipelineState returns k's metadata and registers, every other field 0.
func pipelineState(k *field.Key) field.Key {
	var st field.Key
	layState(&st, k)
	return st
}

type run struct {
	in    *Interp
	res   Result
	depth int
}

// ctx implements ir.ExecContext.
type ctx struct {
	run   *run
	key   *field.Key
	node  *trace.Node
	pipe  *ir.Pipeline
	pid   ir.PipelineID
	table int
	stack *[]field.Value
	// afterFreeze: a recirculating ct froze earlier in this action list
	// (or one that led here), so what this context does is a fork.
	afterFreeze bool
	// ctExec: the context evaluates a conntrack commit's writes, which
	// change the connection, not the packet.
	ctExec bool
}

var _ ir.ExecContext = (*ctx)(nil)

func (c *ctx) Read(s field.Subfield) field.Value {
	c.run.res.Mask.AddField(s.Field, field.Range(s.Ofs, s.Bits))
	return c.key.GetSub(s)
}

// Write sets s to v. Writing a packet field counts as reading it for the
// mask: the datapath actions that carry a decision rewrite only what
// differs between the packet and the result, and whether the written bits
// differ depends on the packet's own. Open vSwitch un-wildcards a set
// field for the same reason. Registers and metadata are pipeline state,
// never in a datapath key, so their writes are not recorded.
func (c *ctx) Write(s field.Subfield, v field.Value) {
	connState := c.ctExec && (s.Field == field.CTMark || s.Field == field.CTLabel)
	if !field.IsRegister(s.Field) && s.Field != field.Metadata && !connState {
		c.run.res.Mask.AddField(s.Field, field.Range(s.Ofs, s.Bits))
	}
	c.key.SetSub(s, v)
}

func (c *ctx) Key() *field.Key                    { return c.key }
func (c *ctx) Pipeline() ir.PipelineID            { return c.pid }
func (c *ctx) Table() int                         { return c.table }
func (c *ctx) Env() any                           { return c.run.in.env }
func (c *ctx) Tracing() bool                      { return c.node != nil }
func (c *ctx) Trace(kind trace.Kind, text string) { c.node.Add(kind, text) }

func (c *ctx) SetAlwaysIndent() {
	if c.node != nil {
		c.node.AlwaysIndent = true
	}
}

func (c *ctx) Sub(kind trace.Kind, text string) ir.ExecContext {
	n := *c
	n.node = c.node.Add(kind, text)
	return &n
}

func (c *ctx) WithKey(key *field.Key) ir.ExecContext {
	n := *c
	n.key = key
	return &n
}

func (c *ctx) At(id ir.PipelineID, table int) ir.ExecContext {
	n := *c
	n.pid = id
	n.pipe = c.run.in.prog.Pipelines[id]
	n.table = table
	return &n
}

func (c *ctx) Deliver(port string) {
	c.noteFork()
	c.run.res.Steps = append(c.run.res.Steps, Step{Port: port, Key: *c.key})
}

// noteFork records that a live action ran after a freeze on its path.
func (c *ctx) noteFork() {
	if c.afterFreeze {
		c.run.res.Forked = true
	}
}

func (c *ctx) Fail(text string) {
	c.node.Add(trace.Error, text)
	c.run.res.Errors = append(c.run.res.Errors, text)
}

// Lookup finds the rule that matches in the current table, skipping tables
// whose only hit is a pass-through rule, and runs its actions.
func (c *ctx) Lookup() {
	if c.run.depth >= MaxDepth {
		c.Fail(fmt.Sprintf("*** pipeline nested more than %d tables deep, dropping", MaxDepth))
		return
	}
	c.run.depth++
	defer func() { c.run.depth-- }()

	table := c.table
	var rule *ir.Rule
	var tbl *ir.Table
	for {
		tbl, rule = c.match(table)
		if rule == nil || !rule.IsPassThrough(table) {
			break
		}
		table++
	}
	if rule == nil {
		if c.node == nil {
			return
		}
		text := fmt.Sprintf("%2d. no match (implicit drop)", table)
		if name := c.stageName(table, tbl); name != "" {
			text = fmt.Sprintf("%2d. %s: no match (implicit drop)", table, name)
		}
		c.node.Add(trace.Table, text)
		return
	}
	n := *c
	n.table = table
	if c.node != nil {
		n.node = c.node.Add(trace.Table, fmt.Sprintf("%2d. %s", table, rule.Origin.Describe()))
	}
	n.Exec(rule.Actions)
}

func (c *ctx) stageName(table int, tbl *ir.Table) string {
	if tbl != nil {
		return tbl.Name
	}
	return ""
}

func (c *ctx) match(table int) (*ir.Table, *ir.Rule) {
	if c.pipe == nil {
		return nil, nil
	}
	t := c.pipe.Lookup(table)
	if t == nil {
		return nil, nil
	}
	for _, r := range t.Rules {
		if c.eval(r.Match) {
			return t, r
		}
	}
	return t, nil
}

func (c *ctx) eval(m ir.Match) bool { return Eval(m, c.key, &c.run.res.Mask) }

// Eval evaluates m on the packet k and sets in mask every bit of k it read.
// Evaluation short-circuits, so the bits recorded are those the result
// depends on: every packet that agrees with k on them gives the same result.
func Eval(m ir.Match, k *field.Key, mask *field.Mask) bool {
	switch m := m.(type) {
	case ir.Bool:
		return bool(m)
	case *ir.Cmp:
		mask.AddField(m.Field, m.Mask)
		return k.Get(m.Field).And(m.Mask) == m.Value
	case *ir.Set:
		v := k.Get(m.Field)
		for _, g := range m.Groups {
			mask.AddField(m.Field, g.Mask)
			if _, ok := g.Values[v.And(g.Mask)]; ok {
				return true
			}
		}
		return false
	case *ir.Not:
		return !Eval(m.Term, k, mask)
	case *ir.And:
		for _, t := range m.Terms {
			if !Eval(t, k, mask) {
				return false
			}
		}
		return true
	case *ir.Or:
		for _, t := range m.Terms {
			if Eval(t, k, mask) {
				return true
			}
		}
		return false
	}
	panic(fmt.Sprintf("interp: unknown match type %T", m))
}

// Exec runs a rule's actions. An empty list is a drop.
func (c *ctx) Exec(actions []ir.Action) {
	if len(actions) == 0 {
		c.node.Add(trace.Action, "drop;")
		return
	}
	var stack []field.Value
	n := *c
	n.stack = &stack
	for _, a := range actions {
		if c.node != nil {
			c.node.Add(trace.Action, a.Text())
		}
		if n.exec(a) {
			return
		}
	}
}

// exec runs one action and says whether the rule's remaining actions are
// skipped.
func (c *ctx) exec(a ir.Action) (stop bool) {
	switch a := a.(type) {
	case *ir.SetField:
		if a.Note != nil && c.node != nil {
			c.node.Add(trace.Modify, a.Note.String())
		}
		if c.prereqOK(field.Lookup(a.Dst.Field).Prereq) {
			c.Write(a.Dst, a.Value)
		}
	case *ir.Move:
		c.noteMove(a.DstName, a.From)
		c.Write(a.Dst, c.Read(a.From))
	case *ir.Exchange:
		c.noteMove(a.AName, a.B)
		c.noteMove(a.BName, a.A)
		va, vb := c.Read(a.A), c.Read(a.B)
		c.Write(a.A, vb)
		c.Write(a.B, va)
	case *ir.Push:
		v := c.Read(a.From)
		c.node.Add(trace.Modify, fmt.Sprintf("push(%s) -> %s", a.Name, v.Hex()))
		*c.stack = append(*c.stack, v)
	case *ir.Pop:
		st := *c.stack
		if len(st) == 0 {
			c.node.Add(trace.Modify, fmt.Sprintf("pop(%s) <- /* empty stack */", a.Name))
			return
		}
		v := st[len(st)-1]
		*c.stack = st[:len(st)-1]
		c.Write(a.Dst, v)
		c.node.Add(trace.Modify, fmt.Sprintf("pop(%s) <- %s", a.Name, v.Hex()))
	case *ir.DecTTL:
		return c.decTTL()
	case *ir.Next:
		c.next(a)
	case *ir.Output:
		c.run.in.env.Output(c)
	case *ir.Clone:
		k := *c.key
		c.WithKey(&k).Sub(trace.Transformation, "clone").Exec(a.Body)
	case *ir.CTClear:
		field.ClearConntrack(c.key)
	case *ir.CT:
		c.conntrack(a)
	case *ir.Ext:
		a.Op.Execute(c)
	default:
		c.Fail(fmt.Sprintf("*** unsupported action %T", a))
	}
	return false
}

func (c *ctx) prereqOK(p field.Prereq) bool {
	for _, id := range field.PrereqFields(p) {
		c.run.res.Mask.AddField(id, field.Ones(field.Lookup(id).Bits))
	}
	return c.key.PrereqOK(p)
}

// noteMove traces "name = value" for a copy from src, as a change to the
// packet; an empty name means the destination is pipeline state.
func (c *ctx) noteMove(name string, src field.Subfield) {
	if name == "" || c.node == nil {
		return
	}
	v := c.key.GetSub(src)
	text := v.Hex()
	if src.IsWhole() {
		text = field.FormatValue(src.Field, v)
	}
	c.node.Add(trace.Modify, name+" = "+text)
}

func (c *ctx) decTTL() (stop bool) {
	if !c.prereqOK(field.PrereqIP) {
		c.Fail("*** TTL decrement of non-IP packet")
		return false
	}
	ttl := c.Read(field.Whole(field.IPTTL))
	if ttl.Lo <= 1 && c.run.in.stopAtTTLExpiry {
		c.node.Add(trace.Modify, "ip.ttl-- /* TTL exceeded: no further on this path */")
		return true
	}
	if ttl.IsZero() {
		c.Fail("*** TTL underflow")
		return false
	}
	c.Write(field.Whole(field.IPTTL), field.U64(ttl.Lo-1))
	c.node.Add(trace.Modify, "ip.ttl--")
	return false
}

func (c *ctx) next(a *ir.Next) {
	if a.Stage == ir.SameStage || uint8(a.Stage) == c.pid.Stage {
		c.At(c.pid, a.Table).Lookup()
		return
	}
	to := ir.PipelineID{Domain: c.pid.Domain, Stage: uint8(a.Stage)}
	var sub ir.ExecContext = c
	if namer, ok := c.run.in.env.(PipelineNamer); ok {
		sub = c.Sub(trace.Pipeline, namer.EnterPipeline(c, to))
	}
	sub.At(to, a.Table).Lookup()
}

func (c *ctx) conntrack(a *ir.CT) {
	if c.run.in.freezing {
		c.freeze(a)
		return
	}
	if !a.Recirc {
		if text, _ := c.run.in.env.Conntrack(c, a); text != "" {
			c.node.Add(trace.Action, text)
		}
		return
	}
	k := *c.key
	fork := c.WithKey(&k)
	text, proceed := c.run.in.env.Conntrack(fork, a)
	if !proceed {
		return
	}
	fork.Sub(trace.Transformation, text).At(c.pid, a.Table).Lookup()
}

// freeze handles a conntrack action in Freezing mode: a commit without
// recirculation becomes a Step, a recirculating ct a Freeze that ends this
// path (the rest of the action list goes on as a fork).
func (c *ctx) freeze(a *ir.CT) {
	c.noteFork()
	call := c.ctCall(a)
	if c.node != nil {
		c.node.Add(trace.Action, fmt.Sprintf("/* %s */", call.describe()))
	}
	if !a.Recirc {
		c.run.res.Steps = append(c.run.res.Steps, Step{CT: &call, Key: *c.key})
		return
	}
	c.run.res.Freezes = append(c.run.res.Freezes, Freeze{
		CT:     call,
		Key:    *c.key,
		Frozen: Frozen{Pipeline: c.pid, Table: a.Table, State: pipelineState(c.key)},
		Step:   len(c.run.res.Steps),
	})
	c.afterFreeze = true
}

// ctCall evaluates a's zone and its commit's writes on the packet. The
// zone is read through the context, so the mask covers it; so are the
// packet fields the writes copy from. The writes themselves change the
// connection, not the packet: they run on two scratch copies of the
// packet whose ct_mark and ct_label start all zeros and all ones, and the
// bits that end up equal in both are the bits written.
func (c *ctx) ctCall(a *ir.CT) CTCall {
	call := CTCall{CT: a, Zone: uint16(c.Read(a.Zone).Lo)}
	if len(a.Exec) == 0 {
		return call
	}
	lo, hi := *c.key, *c.key
	for _, id := range []field.ID{field.CTMark, field.CTLabel} {
		lo.Set(id, field.Value{})
		hi.Set(id, field.Ones(field.Lookup(id).Bits))
	}
	for _, k := range []*field.Key{&lo, &hi} {
		n := *c
		n.key, n.node, n.ctExec = k, nil, true
		n.Exec(a.Exec)
	}
	markMask := lo.Get(field.CTMark).Xor(hi.Get(field.CTMark)).Not().And(field.Ones(32))
	call.Mark, call.MarkMask = uint32(lo.Get(field.CTMark).And(markMask).Lo), uint32(markMask.Lo)
	call.LabelMask = lo.Get(field.CTLabel).Xor(hi.Get(field.CTLabel)).Not()
	call.Label = lo.Get(field.CTLabel).And(call.LabelMask)
	return call
}

// describe formats a ct call for traces, in OpenFlow's spelling.
func (call *CTCall) describe() string {
	a := call.CT
	var b strings.Builder
	b.WriteString("ct(")
	if a.Commit {
		b.WriteString("commit,")
	}
	if a.Force {
		b.WriteString("force,")
	}
	fmt.Fprintf(&b, "zone=%d", call.Zone)
	if a.NAT != nil {
		b.WriteString(",nat")
	}
	if call.MarkMask != 0 {
		fmt.Fprintf(&b, ",mark=%#x/%#x", call.Mark, call.MarkMask)
	}
	if !call.LabelMask.IsZero() {
		fmt.Fprintf(&b, ",label=%s/%s", call.Label.Hex(), call.LabelMask.Hex())
	}
	if a.Recirc {
		fmt.Fprintf(&b, ",table=%d) freezes here", a.Table)
	} else {
		b.WriteString(")")
	}
	return b.String()
}
