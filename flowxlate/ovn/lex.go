package ovn

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// tokType is the type of a lexical token of the OVN match and action
// languages (ovn-sb(5), "Logical_Flow TABLE").
type tokType uint8

const (
	tEnd tokType = iota
	tID
	tString
	tInteger
	tMaskedInteger
	tMacro     // $name
	tPortGroup // @name
	tTemplate  // ^name
	tError
	tLParen
	tRParen
	tLCurly
	tRCurly
	tLSquare
	tRSquare
	tEq
	tNe
	tLt
	tLe
	tGt
	tGe
	tNot
	tAnd
	tOr
	tEllipsis
	tComma
	tSemicolon
	tEquals
	tExchange
	tDecrement
	tColon
	tHyphen
)

var tokText = [...]string{
	tEnd: "end of input", tLParen: "(", tRParen: ")", tLCurly: "{", tRCurly: "}",
	tLSquare: "[", tRSquare: "]", tEq: "==", tNe: "!=", tLt: "<", tLe: "<=", tGt: ">",
	tGe: ">=", tNot: "!", tAnd: "&&", tOr: "||", tEllipsis: "..", tComma: ",",
	tSemicolon: ";", tEquals: "=", tExchange: "<->", tDecrement: "--", tColon: ":",
	tHyphen: "-",
}

// numFormat is how an integer constant was written, which is how it is shown.
type numFormat uint8

const (
	fmtDecimal numFormat = iota
	fmtHex
	fmtIPv4
	fmtIPv6
	fmtEthernet
)

// token is one lexical token.
type token struct {
	typ    tokType
	s      string // tID, tString, tMacro, tPortGroup, tTemplate, tError
	value  field.Value
	mask   field.Value
	format numFormat
}

// lexer splits a match or action string into tokens.
type lexer struct {
	in    string
	pos   int   // start of the next token
	start int   // start of the current token
	tok   token // current token
	err   error // first error, which ends parsing
}

func newLexer(s string) *lexer {
	lx := &lexer{in: s}
	lx.next()
	return lx
}

// next advances to the next token.
func (lx *lexer) next() tokType {
	lx.tok, lx.start, lx.pos = lexToken(lx.in, lx.pos)
	return lx.tok.typ
}

// lookahead returns the type of the token after the current one.
func (lx *lexer) lookahead() tokType {
	t, _, _ := lexToken(lx.in, lx.pos)
	return t.typ
}

// match advances past the current token if it has type t.
func (lx *lexer) match(t tokType) bool {
	if lx.tok.typ == t {
		lx.next()
		return true
	}
	return false
}

// matchID advances past the current token if it is identifier id.
func (lx *lexer) matchID(id string) bool {
	if lx.tok.typ == tID && lx.tok.s == id {
		lx.next()
		return true
	}
	return false
}

func (lx *lexer) isID(id string) bool { return lx.tok.typ == tID && lx.tok.s == id }

// force requires the current token to have type t.
func (lx *lexer) force(t tokType) bool {
	if lx.match(t) {
		return true
	}
	lx.syntaxError("expecting `%s'", tokText[t])
	return false
}

// isInt reports whether the current token is a small decimal integer.
func (lx *lexer) isInt() bool {
	return lx.tok.typ == tInteger && lx.tok.format == fmtDecimal && lx.tok.value.Hi == 0 && lx.tok.value.Lo <= 1<<31-1
}

// forceInt reads a small decimal integer.
func (lx *lexer) forceInt() (int, bool) {
	if !lx.isInt() {
		lx.syntaxError("expecting small integer")
		return 0, false
	}
	v := int(lx.tok.value.Lo)
	lx.next()
	return v, true
}

// forceEnd requires the end of input.
func (lx *lexer) forceEnd() bool {
	if lx.tok.typ == tEnd {
		return true
	}
	lx.syntaxError("expecting end of input")
	return false
}

// error records a semantic error at the current token, unless one exists.
func (lx *lexer) error(format string, args ...any) {
	if lx.err != nil {
		return
	}
	if lx.tok.typ == tError {
		lx.err = fmt.Errorf("%s", lx.tok.s)
		return
	}
	lx.err = fmt.Errorf(format, args...)
}

// syntaxError records a syntax error naming the unexpected token.
func (lx *lexer) syntaxError(format string, args ...any) {
	if lx.err != nil {
		return
	}
	if lx.tok.typ == tError {
		lx.err = fmt.Errorf("%s", lx.tok.s)
		return
	}
	msg := "Syntax error"
	if lx.tok.typ == tEnd {
		msg += " at end of input"
	} else {
		msg += " at `" + lx.tok.String() + "'"
	}
	if format != "" {
		msg += " " + fmt.Sprintf(format, args...)
	}
	lx.err = fmt.Errorf("%s.", msg)
}

// String shows the token as it could be written.
func (t token) String() string {
	switch t.typ {
	case tID:
		return t.s
	case tString:
		b, _ := json.Marshal(t.s)
		return string(b)
	case tInteger:
		return formatConst(t.value, field.Value{}, false, t.format)
	case tMaskedInteger:
		return formatConst(t.value, t.mask, true, t.format)
	case tMacro:
		return "$" + t.s
	case tPortGroup:
		return "@" + t.s
	case tTemplate:
		return "^" + t.s
	case tError:
		return "error(" + strconv.Quote(t.s) + ")"
	}
	return tokText[t.typ]
}

func isID1(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '.'
}

func isIDN(c byte) bool { return isID1(c) || c >= '0' && c <= '9' }

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func errTok(format string, args ...any) token {
	return token{typ: tError, s: fmt.Sprintf(format, args...)}
}

// lexToken reads the token that starts at or after p.
func lexToken(in string, p int) (tok token, start, end int) {
	for {
		for p < len(in) && (in[p] == ' ' || in[p] == '\t' || in[p] == '\n' || in[p] == '\r' || in[p] == '\v' || in[p] == '\f') {
			p++
		}
		if p+1 < len(in) && in[p] == '/' && in[p+1] == '/' {
			for p < len(in) && in[p] != '\n' {
				p++
			}
			continue
		}
		if p+1 < len(in) && in[p] == '/' && in[p+1] == '*' {
			q := p + 2
			for {
				if q+1 < len(in) && in[q] == '*' && in[q+1] == '/' {
					p = q + 2
					break
				}
				if q >= len(in) || in[q] == '\n' {
					return errTok("`/*' without matching `*/'."), p, q
				}
				q++
			}
			continue
		}
		break
	}
	start = p
	if p >= len(in) {
		return token{typ: tEnd}, p, p
	}
	two := func(second byte, yes, no tokType) (token, int, int) {
		if p+1 < len(in) && in[p+1] == second {
			return token{typ: yes}, start, p + 2
		}
		return token{typ: no}, start, p + 1
	}
	c := in[p]
	switch c {
	case '/':
		return errTok("`/' is only valid as part of `//' or `/*'."), start, p + 1
	case '(':
		return token{typ: tLParen}, start, p + 1
	case ')':
		return token{typ: tRParen}, start, p + 1
	case '{':
		return token{typ: tLCurly}, start, p + 1
	case '}':
		return token{typ: tRCurly}, start, p + 1
	case '[':
		return token{typ: tLSquare}, start, p + 1
	case ']':
		return token{typ: tRSquare}, start, p + 1
	case '=':
		return two('=', tEq, tEquals)
	case '!':
		return two('=', tNe, tNot)
	case '&':
		if p+1 < len(in) && in[p+1] == '&' {
			return token{typ: tAnd}, start, p + 2
		}
		return errTok("`&' is only valid as part of `&&'."), start, p + 1
	case '|':
		if p+1 < len(in) && in[p+1] == '|' {
			return token{typ: tOr}, start, p + 2
		}
		return errTok("`|' is only valid as part of `||'."), start, p + 1
	case '<':
		if p+2 < len(in) && in[p+1] == '-' && in[p+2] == '>' {
			return token{typ: tExchange}, start, p + 3
		}
		return two('=', tLe, tLt)
	case '>':
		return two('=', tGe, tGt)
	case '.':
		if p+1 < len(in) && in[p+1] == '.' {
			return token{typ: tEllipsis}, start, p + 2
		}
		return errTok("`.' is only valid as part of `..' or a number."), start, p + 1
	case ',':
		return token{typ: tComma}, start, p + 1
	case ';':
		return token{typ: tSemicolon}, start, p + 1
	case '-':
		return two('-', tDecrement, tHyphen)
	case '$', '@', '^':
		typ := tMacro
		switch c {
		case '@':
			typ = tPortGroup
		case '^':
			typ = tTemplate
		}
		if p+1 >= len(in) || !isID1(in[p+1]) || in[p+1] == '.' {
			return errTok("`%c' must be followed by a valid identifier.", c), start, p + 1
		}
		q := p + 2
		for q < len(in) && isIDN(in[q]) {
			q++
		}
		return token{typ: typ, s: in[p+1 : q]}, start, q
	case ':':
		if p+1 >= len(in) || in[p+1] != ':' {
			return token{typ: tColon}, start, p + 1
		}
		tok, end = lexInteger(in, p)
		return tok, start, end
	case '"':
		tok, end = lexString(in, p)
		return tok, start, end
	}
	if c >= '0' && c <= '9' {
		tok, end = lexInteger(in, p)
		return tok, start, end
	}
	if isHex(c) {
		q := p
		for q < len(in) && isHex(in[q]) {
			q++
		}
		if q < len(in) && in[q] == ':' {
			tok, end = lexInteger(in, p)
			return tok, start, end
		}
	}
	if isID1(c) {
		q := p + 1
		for q < len(in) && isIDN(in[q]) {
			q++
		}
		return token{typ: tID, s: in[p:q]}, start, q
	}
	if c >= 0x20 && c < 0x7f {
		return errTok("Invalid character `%c' in input.", c), start, p + 1
	}
	return errTok("Invalid byte 0x%d in input.", int8(c)), start, p + 1
}

func lexString(in string, p int) (token, int) {
	q := p + 1
	escaped := false
	for {
		if q >= len(in) {
			return errTok("Input ends inside quoted string."), q
		}
		switch in[q] {
		case '"':
			raw := in[p+1 : q]
			if !escaped {
				return token{typ: tString, s: raw}, q + 1
			}
			var s string
			if err := json.Unmarshal([]byte(in[p:q+1]), &s); err != nil {
				return errTok("%s", err.Error()), q + 1
			}
			return token{typ: tString, s: s}, q + 1
		case '\\':
			escaped = true
			q++
			if q < len(in) {
				q++
			}
		default:
			q++
		}
	}
}

// lexInteger reads an integer, Ethernet, IPv4 or IPv6 constant with an
// optional /mask.
func lexInteger(in string, p int) (token, int) {
	tok, q := lexInteger1(in, p)
	if tok.typ != tInteger || q >= len(in) || in[q] != '/' {
		return tok, q
	}
	m, q := lexInteger1(in, q+1)
	if m.typ == tError {
		return m, q
	}
	tok.typ = tMaskedInteger
	prefix := m.value.Lo
	switch {
	case tok.format == m.format:
		tok.mask = m.value
	case tok.format == fmtIPv4 && m.format == fmtDecimal && m.value.Hi == 0 && prefix <= 32:
		tok.mask = field.Range(32-int(prefix), int(prefix))
	case tok.format == fmtIPv6 && m.format == fmtDecimal && m.value.Hi == 0 && prefix <= 128:
		tok.mask = field.Range(128-int(prefix), int(prefix))
	case tok.format == fmtDecimal && m.format == fmtHex && tok.value.IsZero():
		tok.format = fmtHex
		tok.mask = m.value
	default:
		return errTok("Value and mask have incompatible formats."), q
	}
	tok.value = tok.value.And(tok.mask)
	return tok, q
}

func lexInteger1(in string, p int) (token, int) {
	q := p
	sawDot := false
	for q < len(in) {
		c := in[q]
		if isAlnum(c) || c == ':' && !sawDot || c == '.' && !(q+1 < len(in) && in[q+1] == '.') {
			if c == '.' {
				sawDot = true
			}
			q++
			continue
		}
		break
	}
	s := in[p:q]
	switch {
	case len(s) == 0:
		return errTok("Integer constant expected."), q
	case len(s) == 17 && isMAC(s):
		return token{typ: tInteger, value: parseMAC(s), format: fmtEthernet}, q
	case strings.Trim(s, "0123456789") == "":
		if s[0] == '0' && len(s) > 1 {
			return errTok("Decimal constants must not have leading zeros."), q
		}
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return errTok("Decimal constants must be less than 2**64."), q
		}
		return token{typ: tInteger, value: field.U64(v), format: fmtDecimal}, q
	case len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'):
		if len(s) == 2 {
			return errTok("Hex digits expected following 0%c.", s[1]), q
		}
		return lexHex(s[2:]), q
	case len(s) < 46:
		if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
			if a.Is4() && strings.Count(s, ":") == 0 {
				b := a.As4()
				return token{typ: tInteger, value: field.FromBytes(b[:]), format: fmtIPv4}, q
			}
			b := a.As16()
			return token{typ: tInteger, value: field.FromBytes(b[:]), format: fmtIPv6}, q
		}
	}
	return errTok("Invalid numeric constant."), q
}

func lexHex(digits string) token {
	var v field.Value
	sig := strings.TrimLeft(digits, "0")
	for i := 0; i < len(digits); i++ {
		if !isHex(digits[i]) {
			return errTok("Invalid syntax in hexadecimal constant.")
		}
	}
	if len(sig) > 32 {
		return errTok("Hexadecimal constant requires more than 128 bits.")
	}
	for i := 0; i < len(sig); i++ {
		d, _ := strconv.ParseUint(sig[i:i+1], 16, 8)
		v = v.Shl(4)
		v.Lo |= d
	}
	return token{typ: tInteger, value: v, format: fmtHex}
}

func isMAC(s string) bool {
	for i := 0; i < 17; i++ {
		if i%3 == 2 {
			if s[i] != ':' {
				return false
			}
		} else if !isHex(s[i]) {
			return false
		}
	}
	return true
}

func parseMAC(s string) field.Value {
	var v field.Value
	for i := 0; i < 17; i += 3 {
		b, _ := strconv.ParseUint(s[i:i+2], 16, 8)
		v = v.Shl(8)
		v.Lo |= b
	}
	return v
}

// formatConst writes an integer constant the way the OVN lexer would
// accept it back: in its own format when the value fits, otherwise in
// hexadecimal, with a mask shown as a prefix length where it is one.
func formatConst(v, m field.Value, masked bool, f numFormat) string {
	eff := f
	fits := func(x field.Value) bool {
		switch f {
		case fmtDecimal:
			return x.Hi == 0
		case fmtIPv4:
			return x.Width() <= 32
		case fmtEthernet:
			return x.Width() <= 48
		}
		return true
	}
	if !fits(v) || masked && !fits(m) {
		eff = fmtHex
	}
	s := formatNum(v, eff)
	if !masked {
		return s
	}
	if eff == fmtIPv4 {
		if n := m.OnesCount(); m == field.Range(32-n, n) {
			return s + "/" + strconv.Itoa(n)
		}
	}
	if f == fmtIPv6 {
		if n := m.OnesCount(); m == field.Range(128-n, n) {
			return s + "/" + strconv.Itoa(n)
		}
	}
	return s + "/" + formatNum(m, eff)
}

func formatNum(v field.Value, f numFormat) string {
	switch f {
	case fmtDecimal:
		return strconv.FormatUint(v.Lo, 10)
	case fmtIPv4:
		return field.FormatIPv4Addr(v)
	case fmtIPv6:
		return field.FormatIPv6Addr(v)
	case fmtEthernet:
		return field.FormatMAC(v)
	}
	return v.Hex()
}
