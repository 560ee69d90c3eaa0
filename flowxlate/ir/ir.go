// Package ir is flowxlate's intermediate form: a generic multi-table pipeline
// of prioritised match/action rules over the field set of package field.
//
// A Program holds pipelines; a pipeline holds numbered tables; a table holds
// rules in the order they are tried (highest priority first). Front ends
// (OVN logical flows, OpenFlow rules) compile into this form; the
// interpreter and everything below it see only this form. Front-end
// semantics that are not generic packet operations (OVN's port security
// checks, MAC binding lookups, packet composition) enter as ExtOp values,
// which carry their own Execute method.
//
// Rules, matches and actions are immutable once built and may be shared by
// several tables and pipelines.
package ir

import (
	"fmt"
	"sort"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// PipelineID names a pipeline: Domain is the bridge or logical datapath it
// belongs to, Stage which of that domain's pipelines it is (for OVN, 0 is
// ingress and 1 egress).
type PipelineID struct {
	Domain uint32
	Stage  uint8
}

func (id PipelineID) String() string { return fmt.Sprintf("%d/%d", id.Domain, id.Stage) }

// Program is a set of pipelines.
type Program struct {
	Pipelines map[PipelineID]*Pipeline
}

// NewProgram returns an empty Program.
func NewProgram() *Program { return &Program{Pipelines: make(map[PipelineID]*Pipeline)} }

// Pipeline returns the pipeline with the given ID, creating it (with the
// given name) if it does not exist.
func (p *Program) Pipeline(id PipelineID, name string) *Pipeline {
	pl, ok := p.Pipelines[id]
	if !ok {
		pl = &Pipeline{ID: id, Name: name}
		p.Pipelines[id] = pl
	}
	return pl
}

// Pipeline is a sequence of numbered tables.
type Pipeline struct {
	ID     PipelineID
	Name   string
	Tables []*Table // indexed by table number; nil entries are empty tables
}

// Table returns table n, creating it if needed.
func (p *Pipeline) Table(n int) *Table {
	for len(p.Tables) <= n {
		p.Tables = append(p.Tables, nil)
	}
	if p.Tables[n] == nil {
		p.Tables[n] = &Table{Number: n}
	}
	return p.Tables[n]
}

// Lookup returns table n, or nil if it holds no rules.
func (p *Pipeline) Lookup(n int) *Table {
	if n < 0 || n >= len(p.Tables) {
		return nil
	}
	return p.Tables[n]
}

// Table is a prioritised list of rules.
type Table struct {
	Number int
	Name   string // stage name shown in traces, if the front end has one
	Rules  []*Rule
}

// Insert adds r after every rule of higher or equal priority.
func (t *Table) Insert(r *Rule) {
	i := sort.Search(len(t.Rules), func(i int) bool { return t.Rules[i].Priority < r.Priority })
	t.Rules = append(t.Rules, nil)
	copy(t.Rules[i+1:], t.Rules[i:])
	t.Rules[i] = r
}

// Append adds r at the end, leaving the table unsorted until Sort: for
// building a table from many rules at once.
func (t *Table) Append(r *Rule) { t.Rules = append(t.Rules, r) }

// Sort orders the rules by decreasing priority, keeping the order of rules
// of equal priority.
func (t *Table) Sort() {
	sort.SliceStable(t.Rules, func(i, j int) bool { return t.Rules[i].Priority > t.Rules[j].Priority })
}

// Remove deletes r (compared by identity) and reports whether it was there.
func (t *Table) Remove(r *Rule) bool {
	for i, x := range t.Rules {
		if x == r {
			t.Rules = append(t.Rules[:i], t.Rules[i+1:]...)
			return true
		}
	}
	return false
}

// Origin tells where a rule came from, for traces and error reports.
type Origin interface {
	// Describe returns the trace line for the rule, after the table number:
	// for example "ls_in_l2_lkup: eth.dst == 00:00:00:00:00:02, priority 50, uuid 4be4a5b8".
	Describe() string
}

// Rule is one prioritised match/action entry.
type Rule struct {
	Priority int
	Match    Match
	Actions  []Action // empty means drop
	Origin   Origin
}

// IsPassThrough reports whether r matches every packet and does nothing but
// continue to the next table: a rule that traces may leave out.
func (r *Rule) IsPassThrough(table int) bool {
	if b, ok := r.Match.(Bool); !ok || !bool(b) || len(r.Actions) != 1 {
		return false
	}
	n, ok := r.Actions[0].(*Next)
	return ok && n.Stage == SameStage && n.Table == table+1
}

// Match is a boolean expression over fields: Bool, *Cmp, *Not, *And, *Or.
type Match interface{ isMatch() }

// Bool is a constant match.
type Bool bool

// Cmp is true when the bits of Field selected by Mask equal Value.
type Cmp struct {
	Field field.ID
	Value field.Value
	Mask  field.Value
}

// Not negates a match.
type Not struct{ Term Match }

// And is true when every term is.
type And struct{ Terms []Match }

// Or is true when any term is.
type Or struct{ Terms []Match }

func (Bool) isMatch() {}
func (*Cmp) isMatch() {}
func (*Not) isMatch() {}
func (*And) isMatch() {}
func (*Or) isMatch()  {}

// Action is one step of a rule's action list. Text returns the front end's
// spelling of it, for traces.
type Action interface{ Text() string }

// Src is the front end's text of an action; embedding it implements Text.
type Src string

// Text returns the action's source text.
func (s Src) Text() string { return string(s) }

// SetField stores Value (right-aligned) into Dst. Note, if not nil, gives
// the line a trace shows for the packet change; front ends leave it nil for
// changes to pipeline state such as registers. It is a Stringer so that
// front ends need not format it until a trace asks.
type SetField struct {
	Src
	Dst   field.Subfield
	Value field.Value
	Note  fmt.Stringer
}

// Move copies Src into Dst (same width). When DstName is not empty a trace
// shows "DstName = <value>".
type Move struct {
	Src
	Dst, From field.Subfield
	DstName   string
}

// Exchange swaps A and B (same width), each shown like Move when named.
type Exchange struct {
	Src
	A, B         field.Subfield
	AName, BName string
}

// Push pushes the value of From onto the pipeline's value stack.
type Push struct {
	Src
	From field.Subfield
	Name string
}

// Pop pops the top of the value stack into Dst.
type Pop struct {
	Src
	Dst  field.Subfield
	Name string
}

// DecTTL decrements the IP TTL or hop limit.
type DecTTL struct{ Src }

// SameStage in Next.Stage means the current pipeline.
const SameStage = -1

// Next continues in table Table of the same pipeline (Stage == SameStage) or
// of stage Stage of the same domain.
type Next struct {
	Src
	Stage int
	Table int
}

// Output hands the packet to the environment's output stage (for OVN: from
// ingress to egress, from egress to a port).
type Output struct{ Src }

// Clone runs Body on a copy of the packet; the original continues after it.
type Clone struct {
	Src
	Body []Action
}

// CTClear forgets the packet's connection tracking state.
type CTClear struct{ Src }

// NATKind says which translation a conntrack action applies.
type NATKind uint8

// NAT kinds.
const (
	NATNone NATKind = iota
	NATSrc          // translate the source (SNAT)
	NATDst          // translate the destination (DNAT)
	NATAuto         // apply the connection's existing translation, if any
)

// Backend is one destination a load-balancing DNAT may choose.
type Backend struct {
	IPv6 bool
	Addr field.Value // IPv4 in the low 32 bits, or IPv6
	Port uint16      // 0: keep the packet's port
}

// NAT describes the translation of a conntrack action.
type NAT struct {
	Kind     NATKind
	IPv6     bool
	Addr     field.Value // the address to translate to (when AddrSet)
	AddrSet  bool
	PortLo   uint16
	PortHi   uint16
	Backends []Backend // load balancing: choose one of these
	// HashFields, for load balancing, lists the fields whose hash picks
	// the backend, comma-separated in OpenFlow's names as a select
	// group's fields() takes them ("ip_src,ip_dst,tp_dst"); empty means
	// the datapath's default hash of the 5-tuple.
	HashFields string
}

// CT sends the packet through connection tracking in the zone held by Zone.
// With Commit it creates or updates the connection and applies Exec (which
// may only set ct_mark and ct_label); Force (OpenFlow's ct(force)) first
// ends a connection that exists in the other direction. With Recirc the
// packet, with its conntrack fields filled in, continues at Table of the
// current pipeline as a new lookup, and the actions after CT continue on
// the unmodified packet. Flavor is the front end's name for the action, for
// the environment's use.
type CT struct {
	Src
	Zone   field.Subfield
	Commit bool
	Force  bool
	NAT    *NAT
	Exec   []Action
	Recirc bool
	Table  int
	Flavor string
}

// Ext is a front-end specific operation.
type Ext struct {
	Src
	Op ExtOp
}

// ExtOp is implemented by front ends for operations that are not generic
// packet operations.
type ExtOp interface {
	// Execute runs the operation on the packet of c.
	Execute(c ExecContext)
}

// Nested returns the action lists nested in a (Clone's body, CT's Exec,
// or an ExtOp's own, if it has any), for walks over a rule's actions.
func Nested(a Action) [][]Action {
	switch a := a.(type) {
	case *Clone:
		return [][]Action{a.Body}
	case *CT:
		return [][]Action{a.Exec}
	case *Ext:
		if n, ok := a.Op.(interface{ Nested() [][]Action }); ok {
			return n.Nested()
		}
	}
	return nil
}

// ExecContext is what the interpreter offers to an ExtOp and to the
// environment while a packet runs: the packet, recorded reads and writes,
// trace output, and ways to run more of the pipeline.
type ExecContext interface {
	// Read returns subfield s of the packet and records its bits in the
	// megaflow mask.
	Read(s field.Subfield) field.Value
	// Write stores v into subfield s of the packet.
	Write(s field.Subfield, v field.Value)
	// Key returns the packet itself; reads through it are not recorded.
	Key() *field.Key
	// Pipeline and Table say where the packet is.
	Pipeline() PipelineID
	Table() int
	// Env returns the environment the interpreter was given.
	Env() any
	// Tracing reports whether the run records a trace; when it does not,
	// Trace and Sub ignore their text, and callers can skip making it.
	Tracing() bool
	// Trace adds a node to the trace at the current position.
	Trace(kind trace.Kind, text string)
	// Sub adds a node and returns a context whose trace output goes under
	// it; the packet is shared.
	Sub(kind trace.Kind, text string) ExecContext
	// SetAlwaysIndent marks the node a Sub context writes under.
	SetAlwaysIndent()
	// WithKey returns a context that runs on key instead (a derived packet).
	WithKey(key *field.Key) ExecContext
	// At returns a context positioned at table of pipeline id, for Lookup
	// and Exec.
	At(id PipelineID, table int) ExecContext
	// Lookup runs a table lookup at the context's pipeline and table and
	// executes the rule that matches.
	Lookup()
	// Exec runs actions as if they were a rule's actions at the context's
	// position.
	Exec(actions []Action)
	// Deliver records that the packet, as it is now, leaves through port.
	Deliver(port string)
	// Fail records an error that stops this packet's processing path.
	Fail(text string)
}

// Set is a disjunction of comparisons on one field, grouped by mask for
// hash lookup: it is true when, for some group, the field's bits under the
// group's mask are one of the group's values.
type Set struct {
	Field  field.ID
	Groups []*SetGroup
}

// SetGroup is the values a Set accepts under one mask.
type SetGroup struct {
	Mask   field.Value
	Values map[field.Value]struct{}
}

// Add accepts value under mask.
func (s *Set) Add(value, mask field.Value) {
	for _, g := range s.Groups {
		if g.Mask == mask {
			g.Values[value.And(mask)] = struct{}{}
			return
		}
	}
	s.Groups = append(s.Groups, &SetGroup{Mask: mask, Values: map[field.Value]struct{}{value.And(mask): {}}})
}

func (*Set) isMatch() {}
