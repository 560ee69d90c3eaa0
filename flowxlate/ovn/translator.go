package ovn

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// Options configures a Translator.
type Options struct {
	Logger *slog.Logger
	// Resident reports whether a logical port is resident on this chassis
	// (is_chassis_resident). Nil means every port is, as ovn-trace assumes.
	Resident func(port string) bool
}

// Stats counts what a Translator holds.
type Stats struct {
	LogicalFlows int // Logical_Flow rows seen
	Rules        int // pipeline rules built (after datapath-group expansion)
	Skipped      int // logical flows skipped because they do not parse or are unsupported
}

// Skip names a logical flow that the pipeline leaves out, and why.
type Skip struct {
	UUID     string
	Datapath string // the datapath it failed for, if the failure is datapath-specific
	Pipeline string
	Table    int
	Priority int
	Match    string
	Actions  string
	Reason   string
}

// Translator turns Southbound contents into the logical pipeline, an
// ir.Program with an ingress and an egress pipeline per datapath.
//
// Load builds it from a full snapshot; Apply updates it from a change,
// recompiling only the logical flows the change touches. A Translator is
// not safe for concurrent use; Program returns the current program, which
// the caller must not modify.
type Translator struct {
	opts  Options
	log   *slog.Logger
	st    symtab
	sb    Southbound // current rows, the source of truth for rebuilding
	rows  rowIndex
	w     *world
	otabs *optionTables
	prog  *ir.Program
	flows map[string]*compiledFlow // by Logical_Flow UUID
	// refs index logical flows by the names they depend on.
	asRefs map[string]map[string]bool // address set name → flow UUIDs
	pgRefs map[string]map[string]bool // port group name → flow UUIDs
	dpRefs map[string]map[string]bool // datapath UUID → flow UUIDs placed in it
	cache  map[compileKey]*compiled
	bulk   bool  // building from scratch: append rules, sort tables at the end
	zones  Zones // conntrack zones, for Decide and Resume (SetZones)
}

// compiledFlow is what one logical flow contributed to the program.
type compiledFlow struct {
	lf     *LogicalFlow
	origin lflowOrigin
	placed []placedRule
	skips  []Skip
	refs   exprRefs
}

type placedRule struct {
	table *ir.Table
	rule  *ir.Rule
}

type compileKey struct {
	match, actions string
	pipeline       int
	table          int
	isSwitch       bool
}

type compiled struct {
	match   ir.Match
	actions []ir.Action
	err     error
	refs    exprRefs
}

// NewTranslator returns an empty Translator.
func NewTranslator(opts Options) *Translator {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Translator{opts: opts, log: log, st: sharedSymtab()}
}

var (
	symtabOnce sync.Once
	symtabVal  symtab
)

// sharedSymtab returns the symbol table, which is read-only after it is
// built and so shared by every Translator.
func sharedSymtab() symtab {
	symtabOnce.Do(func() { symtabVal = newSymtab() })
	return symtabVal
}

// Load replaces the Translator's contents with sb.
func (t *Translator) Load(sb *Southbound) error {
	t.sb = *sb
	t.rebuild()
	return nil
}

func (t *Translator) rebuild() {
	t.rows = indexRows(&t.sb)
	t.w = buildWorld(&t.sb)
	t.otabs = optionTablesFrom(&t.sb)
	t.prog = ir.NewProgram()
	t.flows = make(map[string]*compiledFlow, len(t.sb.LogicalFlows))
	// The reference indexes serve incremental updates; Apply builds them
	// when it first needs them.
	t.asRefs, t.pgRefs, t.dpRefs = nil, nil, nil
	t.cache = map[compileKey]*compiled{}
	for _, dp := range t.w.datapaths {
		t.addPipelines(dp)
	}
	t.bulk = true
	for i := range t.sb.LogicalFlows {
		t.addFlow(&t.sb.LogicalFlows[i])
	}
	t.bulk = false
	for _, pl := range t.prog.Pipelines {
		for _, tbl := range pl.Tables {
			if tbl != nil {
				tbl.Sort()
			}
		}
	}
	t.cache = nil // only needed while building
	st := t.Stats()
	t.log.Info("logical pipeline built", "logical_flows", st.LogicalFlows, "rules", st.Rules, "skipped", st.Skipped, "datapaths", len(t.w.datapaths))
}

func (t *Translator) addPipelines(dp *datapath) {
	kind := "router"
	if dp.isSwitch {
		kind = "switch"
	}
	t.prog.Pipeline(dp.pipeline(pipelineIngress), fmt.Sprintf("%s %s ingress", kind, dp.friendly))
	t.prog.Pipeline(dp.pipeline(pipelineEgress), fmt.Sprintf("%s %s egress", kind, dp.friendly))
}

// Program returns the current logical pipeline.
func (t *Translator) Program() *ir.Program { return t.prog }

// Stats reports counts.
func (t *Translator) Stats() Stats {
	s := Stats{LogicalFlows: len(t.flows)}
	for _, f := range t.flows {
		s.Rules += len(f.placed)
		if len(f.skips) > 0 {
			s.Skipped++
		}
	}
	return s
}

// Skipped lists the logical flows left out of the pipeline, with reasons,
// sorted by UUID.
func (t *Translator) Skipped() []Skip {
	var out []Skip
	for _, f := range t.flows {
		out = append(out, f.skips...)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].UUID != out[j].UUID {
			return out[i].UUID < out[j].UUID
		}
		return out[i].Datapath < out[j].Datapath
	})
	return out
}

// flowDatapaths returns the datapaths a logical flow applies to.
func (t *Translator) flowDatapaths(lf *LogicalFlow) []*datapath {
	var out []*datapath
	if dp := t.w.datapaths[lf.Datapath]; dp != nil {
		out = append(out, dp)
	}
	if g := t.rows.dpGroups[lf.DatapathGroup]; g != nil {
		for _, u := range g.Datapaths {
			if dp := t.w.datapaths[u]; dp != nil {
				out = append(out, dp)
			}
		}
	}
	return out
}

func (t *Translator) addFlow(lf *LogicalFlow) {
	cf := &compiledFlow{lf: lf}
	cf.origin = lflowOrigin{lf: lf, w: t.w}
	t.flows[lf.UUID] = cf
	skip := func(dp *datapath, reason string) {
		s := Skip{UUID: lf.UUID, Pipeline: lf.Pipeline, Table: lf.TableID, Priority: lf.Priority,
			Match: lf.Match, Actions: lf.Actions, Reason: reason}
		if dp != nil {
			s.Datapath = dp.name
		}
		cf.skips = append(cf.skips, s)
	}
	pipeline := pipelineIngress
	switch lf.Pipeline {
	case "ingress":
	case "egress":
		pipeline = pipelineEgress
	default:
		skip(nil, fmt.Sprintf("unknown pipeline %q", lf.Pipeline))
		return
	}
	if lf.TableID < 0 || lf.TableID >= numLogicalTables {
		skip(nil, fmt.Sprintf("table %d is outside the %d logical tables", lf.TableID, numLogicalTables))
		return
	}
	dps := t.flowDatapaths(lf)
	if len(dps) == 0 {
		skip(nil, "logical flow has no datapath")
		return
	}
	dpDependent := dependsOnDatapath(lf)
	for _, dp := range dps {
		key := compileKey{match: lf.Match, actions: lf.Actions, pipeline: pipeline, table: lf.TableID, isSwitch: dp.isSwitch}
		var c *compiled
		if dpDependent {
			c = t.compile(lf, pipeline, dp) // unique to this datapath
		} else if c = t.cache[key]; c == nil {
			c = t.compile(lf, pipeline, dp)
			if t.cache != nil {
				t.cache[key] = c
			}
		}
		cf.refs.addressSets = append(cf.refs.addressSets, c.refs.addressSets...)
		cf.refs.portGroups = append(cf.refs.portGroups, c.refs.portGroups...)
		if c.err != nil {
			skip(dp, c.err.Error())
			continue
		}
		tbl := t.prog.Pipeline(dp.pipeline(pipeline), "").Table(lf.TableID)
		if tbl.Name == "" {
			tbl.Name = lf.StageName
		}
		r := &ir.Rule{Priority: lf.Priority, Match: c.match, Actions: c.actions, Origin: &cf.origin}
		if t.bulk {
			tbl.Append(r)
		} else {
			tbl.Insert(r)
		}
		cf.placed = append(cf.placed, placedRule{table: tbl, rule: r})
	}
	if t.asRefs != nil {
		t.index(cf)
	}
	if len(cf.skips) > 0 {
		s := cf.skips[0]
		t.log.Warn("skipping logical flow", "uuid", lf.UUID, "datapath", s.Datapath, "pipeline", lf.Pipeline,
			"table", lf.TableID, "priority", lf.Priority, "reason", s.Reason)
	}
}

// ensureIndexes builds the indexes from names to the flows that use them,
// if they do not exist yet.
func (t *Translator) ensureIndexes() {
	if t.asRefs != nil {
		return
	}
	t.asRefs = map[string]map[string]bool{}
	t.pgRefs = map[string]map[string]bool{}
	t.dpRefs = map[string]map[string]bool{}
	for _, cf := range t.flows {
		t.index(cf)
	}
}

// index records what cf depends on.
func (t *Translator) index(cf *compiledFlow) {
	u := cf.lf.UUID
	for _, n := range cf.refs.addressSets {
		addRef(t.asRefs, n, u)
	}
	for _, n := range cf.refs.portGroups {
		addRef(t.pgRefs, n, u)
	}
	if dependsOnDatapath(cf.lf) {
		for _, dp := range t.flowDatapaths(cf.lf) {
			addRef(t.dpRefs, dp.uuid, u)
		}
	}
}

func addRef(m map[string]map[string]bool, name, uuid string) {
	s := m[name]
	if s == nil {
		s = map[string]bool{}
		m[name] = s
	}
	s[uuid] = true
}

// removeFlow takes a logical flow's rules out of the program.
func (t *Translator) removeFlow(uuid string) {
	cf := t.flows[uuid]
	if cf == nil {
		return
	}
	for _, p := range cf.placed {
		p.table.Remove(p.rule)
	}
	if t.asRefs == nil {
		delete(t.flows, uuid)
		return
	}
	for _, n := range cf.refs.addressSets {
		delete(t.asRefs[n], uuid)
	}
	for _, n := range cf.refs.portGroups {
		delete(t.pgRefs[n], uuid)
	}
	if dependsOnDatapath(cf.lf) {
		for _, s := range t.dpRefs {
			delete(s, uuid)
		}
	}
	delete(t.flows, uuid)
}

// compile parses and compiles one logical flow for one datapath.
func (t *Translator) compile(lf *LogicalFlow, pipeline int, dp *datapath) *compiled {
	c := &compiled{}
	names := worldNames{t.w}
	m, err := parseExprString(lf.Match, t.st, names, &c.refs, int(dp.key))
	if err != nil {
		c.err = fmt.Errorf("parsing match failed: %w", err)
		return c
	}
	acts, prereqs, err := parseActions(lf.Actions, t.st, pipeline, lf.TableID, dp, t.otabs)
	if err != nil {
		c.err = fmt.Errorf("parsing actions failed: %w", err)
		return c
	}
	m = combine(eAnd, prereqs, m)
	m, err = t.st.annotate(m, nil)
	if err != nil {
		c.err = fmt.Errorf("match annotation failed: %w", err)
		return c
	}
	m = simplify(m, t.opts.Resident)
	c.match = compileMatch(m, dp)
	c.actions = acts
	return c
}

// worldNames resolves address sets and port groups from the world.
type worldNames struct{ w *world }

func (n worldNames) AddressSet(name string) ([]constant, bool) {
	v, ok := n.w.addressSets[name]
	return v, ok
}

func (n worldNames) PortGroup(name string) ([]constant, bool) {
	v, ok := n.w.portGroups[name]
	return v, ok
}

// compileMatch turns a simplified expression into an ir.Match, resolving
// port names in dp.
func compileMatch(e *expr, dp *datapath) ir.Match {
	switch e.kind {
	case eBool:
		return ir.Bool(e.b)
	case eCmp:
		if e.sym.width > 0 {
			return dp.w().intern(ir.Cmp{Field: e.sym.field, Value: e.value, Mask: e.mask})
		}
		key, ok := dp.portKey(e.str)
		if !ok {
			return ir.Bool(false)
		}
		c := dp.w().intern(ir.Cmp{Field: e.sym.field, Value: field.U64(uint64(key)), Mask: field.Ones(32)})
		if e.op == rNe {
			return &ir.Not{Term: c}
		}
		return c
	case eSet:
		return compileAddressSet(e, dp)
	case eAnd:
		terms := make([]ir.Match, 0, len(e.subs))
	next:
		for _, s := range e.subs {
			m := compileMatch(s, dp)
			// Comparisons are interned, so a repeated prerequisite
			// (ip4.src and ip4.dst both require ip4) is the same pointer.
			for _, t := range terms {
				if t == m {
					continue next
				}
			}
			terms = append(terms, m)
		}
		if len(terms) == 1 {
			return terms[0]
		}
		return &ir.And{Terms: terms}
	case eOr:
		if s := compileSet(e); s != nil {
			return s
		}
		terms := make([]ir.Match, len(e.subs))
		for i, s := range e.subs {
			terms[i] = compileMatch(s, dp)
		}
		return &ir.Or{Terms: terms}
	}
	return ir.Bool(false)
}

// compileSet compiles a large disjunction of comparisons on one field
// (an address set) into an ir.Set.
func compileSet(e *expr) ir.Match {
	if len(e.subs) < minSetSize {
		return nil
	}
	var id field.ID
	for i, s := range e.subs {
		if s.kind != eCmp || s.sym.width == 0 || s.op != rEq {
			return nil
		}
		if i == 0 {
			id = s.sym.field
		} else if s.sym.field != id {
			return nil
		}
	}
	set := &ir.Set{Field: id}
	for _, s := range e.subs {
		set.Add(s.value, s.mask)
	}
	return set
}

// setKey names a compiled comparison of a field's bits with an address set.
type setKey struct {
	field     field.ID
	ofs, bits int
	name      string
	dp        uint32 // for port groups, whose names resolve per datapath
}

// compileAddressSet compiles "field == $set" once per world and shares the
// result among every flow that uses it.
func compileAddressSet(e *expr, dp *datapath) ir.Match {
	w := dp.w()
	k := setKey{e.sym.field, e.set.ofs, e.set.n, e.set.name, 0}
	if e.sym.width == 0 {
		k.dp = dp.key
	}
	if s, ok := w.setCache[k]; ok {
		return s
	}
	set := &ir.Set{Field: e.sym.field}
	if e.sym.width == 0 {
		// A port group: the ports of this datapath.
		for _, c := range e.set.values {
			if key, ok := dp.portKey(c.str); ok {
				set.Add(field.U64(uint64(key)), field.Ones(32))
			}
		}
		if len(set.Groups) == 0 {
			return ir.Bool(false)
		}
		w.setCache[k] = set
		return set
	}
	for _, c := range e.set.values {
		x := setCmp(e.sym, e.set.ofs, e.set.n, c)
		if x.mask.IsZero() {
			return ir.Bool(true) // a /0 member matches everything
		}
		set.Add(x.value, x.mask)
	}
	w.setCache[k] = set
	return set
}

// lflowOrigin describes a logical flow in traces.
type lflowOrigin struct {
	lf *LogicalFlow
	w  *world
}

// Describe formats the trace line ovn-trace prints for a matching flow.
func (o *lflowOrigin) Describe() string {
	lf := o.lf
	var b strings.Builder
	stage, source := lf.StageName, lf.Source
	switch {
	case stage != "" && source != "":
		fmt.Fprintf(&b, "%s (%s): ", stage, source)
	case stage != "":
		fmt.Fprintf(&b, "%s: ", stage)
	case source != "":
		fmt.Fprintf(&b, "(%s): ", source)
	}
	uuid := lf.UUID
	if len(uuid) > 8 {
		uuid = uuid[:8]
	}
	fmt.Fprintf(&b, "%s, priority %d, uuid %s", friendlyNames(lf.Match, o.w), lf.Priority, uuid)
	return b.String()
}

// friendlyNames replaces quoted port names in s by their friendly names.
func friendlyNames(s string, w *world) string {
	var b strings.Builder
	pos := 0
	for {
		tok, start, end := lexToken(s, pos)
		if tok.typ == tEnd || tok.typ == tError && end <= pos {
			b.WriteString(s[pos:])
			return b.String()
		}
		if tok.typ == tString {
			if p := w.ports[tok.s]; p != nil {
				b.WriteString(s[pos:start])
				b.WriteString(quoteString(p.friendly))
				pos = end
				continue
			}
		}
		b.WriteString(s[pos:end])
		pos = end
	}
}

// optionTablesFrom builds the option tables from the DHCP option rows.
func optionTablesFrom(sb *Southbound) *optionTables {
	t := defaultOptionTables()
	for _, o := range sb.DHCPOptions {
		t.dhcp[o.Name] = genOpt{o.Name, o.Code, o.Type}
	}
	for _, o := range sb.DHCPv6Options {
		t.dhcpv6[o.Name] = genOpt{o.Name, o.Code, o.Type}
	}
	return t
}
