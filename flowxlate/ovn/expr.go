package ovn

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// relop is a relational operator.
type relop uint8

const (
	rEq relop = iota
	rNe
	rLt
	rLe
	rGt
	rGe
)

func (r relop) String() string { return [...]string{"==", "!=", "<", "<=", ">", ">="}[r] }

func relopFromToken(t tokType) (relop, bool) {
	switch t {
	case tEq:
		return rEq, true
	case tNe:
		return rNe, true
	case tLt:
		return rLt, true
	case tLe:
		return rLe, true
	case tGt:
		return rGt, true
	case tGe:
		return rGe, true
	}
	return 0, false
}

// turn returns the operator for swapped operands: "5 < x" is "x > 5".
func (r relop) turn() relop {
	switch r {
	case rLt:
		return rGt
	case rLe:
		return rGe
	case rGt:
		return rLt
	case rGe:
		return rLe
	}
	return r
}

// invert returns the operator of the negated comparison.
func (r relop) invert() relop {
	return [...]relop{rNe, rEq, rGe, rGt, rLe, rLt}[r]
}

type exprKind uint8

const (
	eCmp exprKind = iota
	eAnd
	eOr
	eBool
	eCond // is_chassis_resident("port")
	eSet  // field == $address_set, kept unexpanded
)

// expr is a parsed match expression. Comparisons hold value and mask in
// the coordinates of their symbol (bit 0 is the symbol's bit 0), or a string
// for string fields.
type expr struct {
	kind  exprKind
	op    relop
	b     bool
	not   bool // for eCond
	sym   *symbol
	value field.Value
	mask  field.Value
	str   string
	subs  []*expr
	set   *setRef // for eSet
}

// setRef is what an eSet node compares: bits ofs..ofs+n-1 of its symbol
// with the values of the named address set or port group.
type setRef struct {
	name   string
	values []constant
	ofs, n int
}

// minSetSize is the size from which "field == $set" stays one node through
// annotation and compiles to a hash lookup, instead of a disjunction.
const minSetSize = 8

// expandSet turns an eSet node, in place, into the disjunction of
// comparisons it stands for.
func (e *expr) expandSet() {
	subs := make([]*expr, 0, len(e.set.values))
	for _, c := range e.set.values {
		subs = append(subs, setCmp(e.sym, e.set.ofs, e.set.n, c))
	}
	*e = expr{kind: eOr, subs: subs}
	if len(subs) == 0 {
		*e = expr{kind: eBool, b: false}
	}
}

// setCmp is the comparison of bits ofs..ofs+n-1 of sym with constant c.
func setCmp(sym *symbol, ofs, n int, c constant) *expr {
	return cmpOf(fieldRef{sym: sym, ofs: ofs, bits: n}, rEq, c)
}

func newBool(b bool) *expr { return &expr{kind: eBool, b: b} }

// combine returns a && b or a || b, flattening nested terms of the same kind.
func combine(kind exprKind, a, b *expr) *expr {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	var subs []*expr
	for _, x := range []*expr{a, b} {
		if x.kind == kind {
			subs = append(subs, x.subs...)
		} else {
			subs = append(subs, x)
		}
	}
	return &expr{kind: kind, subs: subs}
}

// negate applies De Morgan's laws in place.
func (e *expr) negate() {
	if e.kind == eSet {
		e.expandSet()
	}
	switch e.kind {
	case eCmp:
		e.op = e.op.invert()
	case eAnd, eOr:
		for _, s := range e.subs {
			s.negate()
		}
		if e.kind == eAnd {
			e.kind = eOr
		} else {
			e.kind = eAnd
		}
	case eBool:
		e.b = !e.b
	case eCond:
		e.not = !e.not
	}
}

func (e *expr) level() level {
	switch e.kind {
	case eCmp, eSet:
		if e.sym.level == levelNominal {
			return levelNominal
		}
		return levelBoolean
	case eAnd, eOr:
		l := levelOrdinal
		for _, s := range e.subs {
			if sl := s.level(); sl < l {
				l = sl
			}
		}
		return l
	}
	return levelBoolean
}

// constant is one value of a constant set.
type constant struct {
	value  field.Value
	mask   field.Value
	masked bool
	format numFormat
	str    string
}

// constSet is a parsed constant or {set} of constants.
type constSet struct {
	isString bool
	values   []constant
	curlies  bool
	onlySet  string      // the address set that alone supplied values, if any
	one      [1]constant // storage for the usual single value
}

func newConstSet() *constSet {
	cs := &constSet{}
	cs.values = cs.one[:0]
	return cs
}

// Names resolves $address_set and @port_group references while parsing.
// A nil Names resolves nothing.
type Names interface {
	AddressSet(name string) ([]constant, bool)
	PortGroup(name string) ([]constant, bool)
}

const maxParenDepth = 100

type exprParser struct {
	lx    *lexer
	st    symtab
	names Names
	dpKey int // datapath tunnel key, for per-datapath port group names
	not   bool
	depth int
	refs  *exprRefs // names referenced, for incremental updates; may be nil
}

// parseExprString parses s as a match expression.
func parseExprString(s string, st symtab, names Names, refs *exprRefs, dpKey int) (*expr, error) {
	p := &exprParser{lx: newLexer(s), st: st, names: names, dpKey: dpKey, refs: refs}
	e := p.parse()
	p.lx.forceEnd()
	if p.lx.err != nil {
		return nil, p.lx.err
	}
	return e, nil
}

// exprRefs collects the names of address sets and port groups an
// expression used (with repeats).
type exprRefs struct {
	addressSets []string
	portGroups  []string
}

func (p *exprParser) parse() *expr {
	e := p.parseNot()
	if e == nil {
		return nil
	}
	t := p.lx.tok.typ
	if t != tAnd && t != tOr {
		return e
	}
	kind := eAnd
	if t == tOr {
		kind = eOr
	}
	p.lx.next()
	for {
		e2 := p.parseNot()
		if e2 == nil {
			return nil
		}
		e = combine(kind, e, e2)
		if !p.lx.match(t) {
			break
		}
	}
	if p.lx.tok.typ == tAnd || p.lx.tok.typ == tOr {
		p.lx.error("&& and || must be parenthesized when used together.")
		return nil
	}
	return e
}

func (p *exprParser) parseNot() *expr {
	if !p.lx.match(tNot) {
		e, _ := p.parsePrimary()
		return e
	}
	p.not = !p.not
	e, atomic := p.parsePrimary()
	p.not = !p.not
	if e == nil {
		return nil
	}
	if !atomic {
		p.lx.error("Missing parentheses around operand of !.")
		return nil
	}
	e.negate()
	return e
}

func (p *exprParser) parsePrimary() (*expr, bool) {
	lx := p.lx
	if lx.match(tLParen) {
		if p.depth >= maxParenDepth {
			lx.error("Parentheses nested too deeply.")
			return nil, false
		}
		p.depth++
		e := p.parse()
		p.depth--
		if e == nil || !lx.force(tRParen) {
			return nil, false
		}
		return e, true
	}
	switch lx.tok.typ {
	case tTemplate:
		lx.error("Unexpanded template.")
		return nil, false
	case tID:
		if lx.lookahead() == tLParen {
			if lx.matchID("is_chassis_resident") {
				lx.next() // "("
				if lx.tok.typ != tString {
					lx.syntaxError("expecting string")
					return nil, false
				}
				e := &expr{kind: eCond, str: lx.tok.s}
				lx.next()
				if !lx.force(tRParen) {
					return nil, false
				}
				return e, true
			}
			lx.error("parsing function name")
			return nil, false
		}
		f, ok := p.parseField()
		if !ok {
			return nil, false
		}
		r, isRel := relopFromToken(lx.tok.typ)
		if !isRel {
			if f.bits == 0 || lx.tok.typ == tEquals {
				lx.syntaxError("expecting relational operator")
				return nil, false
			}
			if f.bits > 1 && !p.not {
				lx.error("Explicit `!= 0' is required for inequality test of multibit field against 0.")
				return nil, false
			}
			cs := newConstSet()
			cs.values = append(cs.values, constant{format: fmtHex})
			return p.makeCmp(f, rNe, cs), true
		}
		lx.next()
		cs := p.parseConstSet()
		if cs == nil {
			return nil, false
		}
		return p.makeCmp(f, r, cs), false
	}
	c1 := p.parseConstSet()
	if c1 == nil {
		return nil, false
	}
	if _, isRel := relopFromToken(lx.tok.typ); !isRel && len(c1.values) == 1 && !c1.isString &&
		c1.values[0].format == fmtDecimal && !c1.values[0].masked && !c1.curlies {
		if v := c1.values[0].value; v.Hi == 0 && v.Lo <= 1 {
			return newBool(v.Lo == 1), true
		}
	}
	r1, ok := relopFromToken(lx.tok.typ)
	if !ok {
		lx.syntaxError("expecting relational operator")
		return nil, false
	}
	lx.next()
	f, ok := p.parseField()
	if !ok {
		return nil, false
	}
	r2, ok := relopFromToken(lx.tok.typ)
	if !ok {
		return p.makeCmp(f, r1.turn(), c1), false
	}
	lx.next()
	c2 := p.parseConstSet()
	if c2 == nil {
		return nil, false
	}
	lessLike := func(r relop) bool { return r == rLt || r == rLe }
	moreLike := func(r relop) bool { return r == rGt || r == rGe }
	if !(lessLike(r1) && lessLike(r2) || moreLike(r1) && moreLike(r2)) {
		lx.error("Range expressions must have the form `x < field < y' or `x > field > y', with each `<' optionally replaced by `<=' or `>' by `>=').")
		return nil, false
	}
	e1 := p.makeCmp(f, r1.turn(), c1)
	e2 := p.makeCmp(f, r2, c2)
	if lx.err != nil {
		return nil, false
	}
	return combine(eAnd, e1, e2), false
}

// fieldRef is a parsed field or subfield reference.
type fieldRef struct {
	sym  *symbol
	ofs  int
	bits int // 0 for string fields
}

func (f fieldRef) String() string {
	if f.ofs == 0 && f.bits == f.sym.width {
		return f.sym.name
	}
	if f.bits == 1 {
		return f.sym.name + "[" + strconv.Itoa(f.ofs) + "]"
	}
	return f.sym.name + "[" + strconv.Itoa(f.ofs) + ".." + strconv.Itoa(f.ofs+f.bits-1) + "]"
}

// resolved returns the underlying field bits f names.
func (f fieldRef) resolved() field.Subfield { return f.sym.resolve(f.ofs, f.bits) }

func (p *exprParser) parseField() (fieldRef, bool) {
	return parseField(p.lx, p.st)
}

func parseField(lx *lexer, st symtab) (fieldRef, bool) {
	if lx.tok.typ != tID {
		lx.syntaxError("expecting field name")
		return fieldRef{}, false
	}
	sym := st[lx.tok.s]
	if sym == nil {
		lx.syntaxError("expecting field name")
		return fieldRef{}, false
	}
	lx.next()
	f := fieldRef{sym: sym, bits: sym.width}
	if !lx.match(tLSquare) {
		return f, true
	}
	if sym.width == 0 {
		lx.error("Cannot select subfield of string field %s.", sym.name)
		return fieldRef{}, false
	}
	low, ok := lx.forceInt()
	if !ok {
		return fieldRef{}, false
	}
	high := low
	if lx.match(tEllipsis) {
		if high, ok = lx.forceInt(); !ok {
			return fieldRef{}, false
		}
	}
	if !lx.force(tRSquare) {
		return fieldRef{}, false
	}
	switch {
	case low > high:
		lx.error("Invalid bit range %d to %d.", low, high)
		return fieldRef{}, false
	case high >= sym.width:
		lx.error("Cannot select bits %d to %d of %d-bit field %s.", low, high, sym.width, sym.name)
		return fieldRef{}, false
	case sym.level == levelNominal && (low != 0 || high != sym.width-1):
		lx.error("Cannot select subfield of nominal field %s.", sym.name)
		return fieldRef{}, false
	}
	f.ofs, f.bits = low, high-low+1
	return f, true
}

func (p *exprParser) parseConstSet() *constSet {
	cs := newConstSet()
	if p.lx.match(tLCurly) {
		cs.curlies = true
		for !p.lx.match(tRCurly) {
			if !p.parseConst(cs) {
				return nil
			}
			p.lx.match(tComma)
		}
		return cs
	}
	if !p.parseConst(cs) {
		return nil
	}
	return cs
}

func (cs *constSet) setType(lx *lexer, isString bool) bool {
	if len(cs.values) == 0 || cs.isString == isString {
		cs.isString = isString
		return true
	}
	if cs.isString {
		lx.syntaxError("expecting string")
	} else {
		lx.syntaxError("expecting integer")
	}
	return false
}

func (p *exprParser) parseConst(cs *constSet) bool {
	return parseConst(p.lx, cs, p)
}

// parseConst reads one constant into cs. p, if not nil, resolves address
// sets and port groups.
func parseConst(lx *lexer, cs *constSet, p *exprParser) bool {
	tok := lx.tok
	switch tok.typ {
	case tTemplate:
		lx.error("Unexpanded template.")
		return false
	case tString:
		if !cs.setType(lx, true) {
			return false
		}
		cs.onlySet = ""
		cs.values = append(cs.values, constant{str: tok.s})
	case tInteger, tMaskedInteger:
		if !cs.setType(lx, false) {
			return false
		}
		cs.onlySet = ""
		cs.values = append(cs.values, constant{value: tok.value, mask: tok.mask, masked: tok.typ == tMaskedInteger, format: tok.format})
	case tMacro:
		var vals []constant
		ok := false
		if p != nil && p.names != nil {
			vals, ok = p.names.AddressSet(tok.s)
		}
		if p != nil && p.refs != nil {
			p.refs.addressSets = append(p.refs.addressSets, tok.s)
		}
		if !ok {
			lx.syntaxError("expecting address set name")
			return false
		}
		if !cs.setType(lx, false) {
			return false
		}
		if len(cs.values) == 0 {
			// Share the set's values; the cap keeps appends from writing
			// into them.
			cs.values, cs.onlySet = vals[:len(vals):len(vals)], tok.s
		} else {
			cs.values, cs.onlySet = append(cs.values, vals...), ""
		}
		lx.next()
		return true
	case tPortGroup:
		var ports []constant
		ok := false
		if p != nil && p.names != nil {
			sbName := strconv.Itoa(p.dpKey) + "_" + tok.s
			ports, ok = p.names.PortGroup(sbName)
			if !ok {
				ports, ok = p.names.PortGroup(tok.s)
			}
			if p.refs != nil {
				p.refs.portGroups = append(p.refs.portGroups, sbName, tok.s)
			}
		}
		if !ok {
			lx.syntaxError("expecting port group name")
			return false
		}
		if !cs.setType(lx, true) {
			return false
		}
		if len(cs.values) == 0 {
			cs.values, cs.onlySet = ports[:len(ports):len(ports)], "@"+tok.s
		} else {
			cs.values, cs.onlySet = append(cs.values, ports...), ""
		}
	default:
		lx.syntaxError("expecting constant")
		return false
	}
	lx.next()
	return true
}

// cmpOf is the comparison of field f with one constant.
func cmpOf(f fieldRef, r relop, c constant) *expr {
	x := &expr{kind: eCmp, sym: f.sym, op: r}
	if f.sym.width > 0 {
		x.value = c.value.And(field.Ones(f.bits)).Shl(f.ofs)
		if c.masked {
			x.mask = c.mask.And(field.Ones(f.bits)).Shl(f.ofs)
		} else {
			x.mask = field.Range(f.ofs, f.bits)
		}
	} else {
		x.str = c.str
	}
	return x
}

// width returns the minimum width of an integer constant.
func (c constant) width() int {
	if c.masked {
		return c.mask.Width()
	}
	switch c.format {
	case fmtIPv4:
		return 32
	case fmtIPv6:
		return 128
	case fmtEthernet:
		return 48
	}
	return c.value.Width()
}

func typeCheck(lx *lexer, f fieldRef, cs *constSet) bool {
	if cs.isString != (f.sym.width == 0) && len(cs.values) > 0 {
		kind, ckind := "Integer", "string"
		if f.sym.width == 0 {
			kind, ckind = "String", "integer"
		}
		lx.error("%s field %s is not compatible with %s constant.", kind, f.sym.name, ckind)
		return false
	}
	if f.sym.width > 0 {
		for _, c := range cs.values {
			if w := c.width(); w > f.sym.width {
				lx.error("%d-bit constant is not compatible with %d-bit field %s.", w, f.sym.width, f.sym.name)
				return false
			}
		}
	}
	return true
}

func (p *exprParser) makeCmp(f fieldRef, r relop, cs *constSet) *expr {
	lx := p.lx
	if !typeCheck(lx, f, cs) {
		return nil
	}
	if r != rEq && r != rNe {
		switch {
		case cs.curlies:
			lx.error("Only == and != operators may be used with value sets.")
			return nil
		case f.sym.level == levelNominal || f.sym.level == levelBoolean:
			lx.error("Only == and != operators may be used with %s field %s.", f.sym.level, f.sym.name)
			return nil
		case len(cs.values) == 0:
			lx.error("Only == and != operators may be used to compare a field against an empty value set.")
			return nil
		case cs.values[0].masked:
			lx.error("Only == and != operators may be used with masked constants.  Consider using subfields instead (e.g. eth.src[0..15] > 0x1111 in place of eth.src > 00:00:00:00:11:11/00:00:00:00:ff:ff).")
			return nil
		}
	}
	if f.sym.level == levelNominal {
		if f.sym.predicate != "" {
			for _, c := range cs.values {
				positive := c.value.Lo&1 != 0
				positive = positive != (r == rNe)
				positive = positive != p.not
				if !positive {
					n := f.sym.name
					lx.error("Nominal predicate %s may only be tested positively, e.g. `%s' or `%s == 1' but not `!%s' or `%s == 0'.", n, n, n, n, n)
					return nil
				}
			}
		} else if (p.not && r != rNe) || (!p.not && r != rEq) {
			lx.error("Nominal field %s may only be tested for equality (taking enclosing `!' operators into account).", f.sym.name)
			return nil
		}
	}
	if len(cs.values) == 0 {
		return newBool(r == rNe)
	}
	if r == rEq && cs.onlySet != "" && f.sym.predicate == "" && len(cs.values) >= minSetSize {
		return &expr{kind: eSet, sym: f.sym, op: rEq, set: &setRef{name: cs.onlySet, values: cs.values, ofs: f.ofs, n: f.bits}}
	}
	kind := eOr
	if r != rEq {
		kind = eAnd
	}
	if len(cs.values) == 1 {
		return cmpOf(f, r, cs.values[0])
	}
	subs := make([]*expr, 0, len(cs.values))
	for _, c := range cs.values {
		subs = append(subs, cmpOf(f, r, c))
	}
	e := &expr{kind: kind, subs: subs}
	return e
}

var errRecursive = errors.New("recursive symbol expansion")

// annotate expands predicates and subfields and adds prerequisites, so that
// every comparison is on a field (ovn-sb(5): a field's prerequisites must
// hold wherever the field is used). nesting, which tracks the symbols being
// expanded to catch recursion, may be nil for expressions from outside the
// symbol table.
func (st symtab) annotate(e *expr, nesting map[string]bool) (*expr, error) {
	return st.annotate1(e, true, nesting)
}

func (st symtab) annotate1(e *expr, withPrereqs bool, nesting map[string]bool) (*expr, error) {
	switch e.kind {
	case eCmp:
		return st.annotateCmp(e, withPrereqs, nesting)
	case eSet:
		var pre *expr
		if withPrereqs && e.sym.prereqs != "" {
			var err error
			if pre, err = st.parseAnnotated(e.sym.prereqs, nesting); err != nil {
				return nil, err
			}
		}
		// The node is from this parse, never shared: resolve in place.
		for e.sym.parent != nil {
			e.set.ofs += e.sym.parentOfs
			e.sym = e.sym.parent
		}
		return combine(eAnd, pre, e), nil
	case eAnd, eOr:
		if withPrereqs {
			if sym := uniqueSymbol(e); sym != nil {
				withPrereqs = false
				if sym.prereqs != "" {
					pre, err := st.parseAnnotated(sym.prereqs, nesting)
					if err != nil {
						return nil, err
					}
					e = combine(eAnd, pre, e)
				}
			}
		}
		// Re-flatten as we go: an annotated term may have become a
		// conjunction or disjunction of the same kind. Terms that come
		// back unchanged are shared, so the input is never modified (it
		// may hold cached expansions).
		var subs []*expr
		for i, s := range e.subs {
			a, err := st.annotate1(s, withPrereqs, nesting)
			if err != nil {
				return nil, err
			}
			if a == s && subs == nil {
				continue
			}
			if subs == nil {
				subs = make([]*expr, i, len(e.subs)+2)
				copy(subs, e.subs[:i])
			}
			if a.kind == e.kind {
				subs = append(subs, a.subs...)
			} else {
				subs = append(subs, a)
			}
		}
		if subs == nil {
			return e, nil
		}
		if len(subs) == 1 {
			return subs[0], nil
		}
		return &expr{kind: e.kind, subs: subs}, nil
	}
	return e, nil
}

// parseAnnotated parses and annotates a prerequisite or predicate
// expansion. Expansions do not depend on context, so each is parsed once
// and shared: callers must not modify the result (clone it to negate it).
func (st symtab) parseAnnotated(s string, nesting map[string]bool) (*expr, error) {
	if e, ok := expansions.Load(s); ok {
		return e.(*expr), nil
	}
	e, err := st.parseAnnotated1(s, nesting)
	if err != nil {
		return nil, err
	}
	expansions.Store(s, e)
	return e, nil
}

// expansions caches parsed, annotated expansions by their text. The symbol
// table is fixed, so they never change.
var expansions sync.Map

// clone returns a deep copy of e, which callers may then negate.
func (e *expr) clone() *expr {
	c := *e
	if e.subs != nil {
		c.subs = make([]*expr, len(e.subs))
		for i, s := range e.subs {
			c.subs[i] = s.clone()
		}
	}
	return &c
}

func (st symtab) parseAnnotated1(s string, nesting map[string]bool) (*expr, error) {
	if nesting == nil {
		nesting = map[string]bool{}
	}
	e, err := parseExprString(s, st, nil, nil, 0)
	if err == nil {
		e, err = st.annotate(e, nesting)
	}
	if err != nil {
		return nil, fmt.Errorf("Error parsing expression `%s' encountered as prerequisite or predicate of initial expression: %w", s, err)
	}
	return e, nil
}

func (st symtab) annotateCmp(e *expr, withPrereqs bool, nesting map[string]bool) (*expr, error) {
	sym := e.sym
	// Recursion can only come from the symbol table's own expansions,
	// which are annotated once, with a nesting map; see parseAnnotated.
	if nesting != nil {
		if nesting[sym.name] {
			return nil, fmt.Errorf("Recursive expansion of symbol `%s': %w", sym.name, errRecursive)
		}
		nesting[sym.name] = true
		defer delete(nesting, sym.name)
	}

	var pre *expr
	if withPrereqs && sym.prereqs != "" {
		var err error
		if pre, err = st.parseAnnotated(sym.prereqs, nesting); err != nil {
			return nil, err
		}
	}
	switch {
	case sym.parent != nil:
		// Subfield comparisons only come from this parse (cached
		// expansions are already resolved), so resolve in place.
		e.sym = sym.parent
		e.value = e.value.Shl(sym.parentOfs)
		e.mask = e.mask.Shl(sym.parentOfs)
	case sym.predicate != "":
		pred, err := st.parseAnnotated(sym.predicate, nesting)
		if err != nil {
			return nil, err
		}
		positive := e.value.Lo&1 != 0
		if e.op == rNe {
			positive = !positive
		}
		if !positive {
			pred = pred.clone()
			pred.negate()
		}
		e = pred
	}
	// Prerequisites go first, so that evaluation checks the protocol
	// before it reads a field that only exists for that protocol: the
	// megaflow mask then holds only the bits the decision needed.
	if pre != nil {
		return combine(eAnd, pre, e), nil
	}
	return e, nil
}

// uniqueSymbol returns the symbol every comparison in e uses, or nil.
func uniqueSymbol(e *expr) *symbol {
	switch e.kind {
	case eCmp, eSet:
		return e.sym
	case eAnd, eOr:
		var sym *symbol
		for _, s := range e.subs {
			ss := uniqueSymbol(s)
			if ss == nil || sym != nil && ss != sym {
				return nil
			}
			sym = ss
		}
		return sym
	}
	return nil
}

// simplify rewrites every numeric comparison as equality tests (ovn-sb(5)
// semantics of != and of the relational operators on bit patterns) and
// resolves is_chassis_resident with resident.
func simplify(e *expr, resident func(port string) bool) *expr {
	switch e.kind {
	case eCmp:
		if e.sym.width == 0 {
			return e
		}
		switch e.op {
		case rEq:
			if e.mask.IsZero() {
				return newBool(true)
			}
			return e
		case rNe:
			return simplifyNe(e)
		default:
			return simplifyRelational(e)
		}
	case eAnd, eOr:
		// Most terms come back unchanged; copy the list only if one
		// does not. (The input may share subtrees with cached
		// expansions, so it is never modified.)
		var subs []*expr
		for i, s := range e.subs {
			n := simplify(s, resident)
			if n != s && subs == nil {
				subs = make([]*expr, i, len(e.subs))
				copy(subs, e.subs[:i])
			}
			if subs != nil {
				subs = append(subs, n)
			}
		}
		if subs == nil {
			return fix(e)
		}
		return fix(&expr{kind: e.kind, subs: subs})
	case eCond:
		r := true
		if resident != nil {
			r = resident(e.str)
		}
		return newBool(r != e.not)
	}
	return e
}

// fix folds constant terms out of an and/or and flattens it.
func fix(e *expr) *expr {
	if e.kind != eAnd && e.kind != eOr {
		return e
	}
	shortCircuit := e.kind == eOr // true in an OR, false in an AND, decides
	clean := len(e.subs) > 1
	for _, s := range e.subs {
		if s.kind == eBool || s.kind == e.kind {
			clean = false
			break
		}
	}
	if clean {
		return e
	}
	out := &expr{kind: e.kind}
	for _, s := range e.subs {
		if s.kind == eBool {
			if s.b == shortCircuit {
				return newBool(shortCircuit)
			}
			continue
		}
		if s.kind == e.kind {
			out.subs = append(out.subs, s.subs...)
		} else {
			out.subs = append(out.subs, s)
		}
	}
	switch len(out.subs) {
	case 0:
		return newBool(!shortCircuit)
	case 1:
		return out.subs[0]
	}
	return out
}

func simplifyNe(e *expr) *expr {
	var out *expr
	for i := 0; i < e.sym.width; i++ {
		if !e.mask.Bit(i) {
			continue
		}
		b := field.Range(i, 1)
		v := field.Value{}
		if !e.value.Bit(i) {
			v = b
		}
		out = combine(eOr, out, &expr{kind: eCmp, sym: e.sym, op: rEq, value: v, mask: b})
	}
	if out == nil {
		return newBool(false)
	}
	return out
}

func simplifyRelational(e *expr) *expr {
	start := e.mask.TrailingZeros()
	end := start + e.mask.Shr(start).OnesCount()
	lt := e.op == rLt || e.op == rLe
	eq := e.op == rLe || e.op == rGe
	// "x >= 0", "x <= max" are always true; "x > 0", "x < max" are "x != 0/max".
	allSame := true
	for i := start; i < end; i++ {
		if e.value.Bit(i) != lt {
			allSame = false
			break
		}
	}
	if allSame {
		if eq {
			return newBool(true)
		}
		return simplifyNe(e)
	}
	var out *expr
	if eq {
		c := *e
		c.op = rEq
		out = &c
	}
	for z := start; z < end; z++ {
		if e.value.Bit(z) != lt {
			continue
		}
		// Bit z differs in the right direction; bits below z are free.
		c := *e
		c.op = rEq
		c.value = e.value.Xor(field.Range(z, 1)).AndNot(field.Range(start, z-start))
		c.mask = e.mask.AndNot(field.Range(start, z-start))
		out = combine(eOr, out, &c)
	}
	if out == nil {
		return newBool(false)
	}
	return out
}
