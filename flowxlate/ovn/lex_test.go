package ovn

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// lexAll returns the tokens of s, each shown as it could be written back,
// or the first error's text.
func lexAll(s string) string {
	var out []string
	pos := 0
	for {
		tok, _, end := lexToken(s, pos)
		if tok.typ == tEnd {
			return strings.Join(out, " ")
		}
		if tok.typ == tError {
			return "error: " + tok.s
		}
		out = append(out, tok.String())
		pos = end
	}
}

func TestLexer(t *testing.T) {
	tests := []struct{ in, want string }{
		{"eth.dst == ff:ff:ff:ff:ff:ff", "eth.dst == ff:ff:ff:ff:ff:ff"},
		{"reg0[15] == 1", "reg0 [ 15 ] == 1"},
		{"xxreg0[0..31]", "xxreg0 [ 0 .. 31 ]"},
		{"ip4.src == 10.0.0.0/24", "ip4.src == 10.0.0.0/24"},
		{"ip4.src == 10.1.2.3/255.255.0.0", "ip4.src == 10.1.0.0/16"},
		{"ip6.dst == ff02::1:ff00:0/104", "ip6.dst == ff02::1:ff00:0/104"},
		{"fe80::1 ::ffff:1.2.3.4", "fe80::1 ::ffff:1.2.3.4"},
		{"0x800 0X1f 0/0x3", "0x800 0x1f 0/0x3"},
		{"inport == \"lp\\\"1\"", `inport == "lp\"1"`},
		{"$as_ip4 @pg1 ^tmpl", "$as_ip4 @pg1 ^tmpl"},
		{"a <-> b; ip.ttl--; x -", "a <-> b ; ip.ttl -- ; x -"},
		{"1.2.3.4:80", "1.2.3.4 : 80"},
		{"{80, 443}", "{ 80 , 443 }"},
		{"a // comment\n b /* c */ d", "a b d"},
		{"abc:def", "error: Invalid numeric constant."},
		{"01", "error: Decimal constants must not have leading zeros."},
		{"18446744073709551616", "error: Decimal constants must be less than 2**64."},
		{"0x", "error: Hex digits expected following 0x."},
		{"a & b", "error: `&' is only valid as part of `&&'."},
		{"\"abc", "error: Input ends inside quoted string."},
		{"1.2.3.4/0x0", "error: Value and mask have incompatible formats."},
		{"/* open", "error: `/*' without matching `*/'."},
		{"a # b", "error: Invalid character `#' in input."},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) { require.Equal(t, tt.want, lexAll(tt.in)) })
	}
}
