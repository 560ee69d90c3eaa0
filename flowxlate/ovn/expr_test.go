package ovn

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
)

// testNames resolves a few address sets and port groups.
type testNames struct{}

func (testNames) AddressSet(name string) ([]constant, bool) {
	switch name {
	case "as1":
		return parseAddressSet([]string{"10.0.0.1", "10.0.0.2", "192.168.0.0/16"}), true
	case "big":
		var a []string
		for i := 0; i < 20; i++ {
			a = append(a, "10.1.0."+itoa(i))
		}
		return parseAddressSet(a), true
	case "empty":
		return nil, true
	}
	return nil, false
}

func (testNames) PortGroup(name string) ([]constant, bool) {
	if name == "1_pg1" {
		return []constant{{str: "p1"}, {str: "p2"}}, true
	}
	return nil, false
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }

// packet builds a Key from field settings.
func packet(kv map[field.ID]uint64) field.Key {
	var k field.Key
	for id, v := range kv {
		k.Set(id, field.U64(v))
	}
	return k
}

var (
	tcp4 = packet(map[field.ID]uint64{
		field.EthType: 0x800, field.IPProto: 6, field.IPv4Src: 0x0a000001, field.IPv4Dst: 0xc0a80105,
		field.TCPSrc: 1234, field.TCPDst: 80, field.IPTTL: 64, field.EthDst: 0xffffffffffff,
		field.Reg(regLogInport): 1, field.CTState: field.CSTrk | field.CSNew,
	})
	arpReq = packet(map[field.ID]uint64{field.EthType: 0x806, field.ARPOp: 1, field.ARPSPA: 0x0a000001})
)

func evalString(t *testing.T, s string, k field.Key) bool {
	t.Helper()
	st := sharedSymtab()
	w := buildWorld(&Southbound{
		Datapaths: []Datapath{{UUID: "dp", TunnelKey: 1, ExternalIDs: map[string]string{"name": "sw0", "logical-switch": "x"}}},
		Ports: []Port{
			{UUID: "u1", Name: "p1", Datapath: "dp", TunnelKey: 1},
			{UUID: "u2", Name: "p2", Datapath: "dp", TunnelKey: 2},
		},
	})
	e, err := parseExprString(s, st, testNames{}, nil, 1)
	require.NoError(t, err, s)
	e, err = st.annotate(e, nil)
	require.NoError(t, err, s)
	m := compileMatch(simplify(e, nil), w.datapaths["dp"])
	var mask field.Mask
	return interp.Eval(m, &k, &mask)
}

func TestMatchSemantics(t *testing.T) {
	tests := []struct {
		expr string
		pkt  field.Key
		want bool
	}{
		{"ip4", tcp4, true},
		{"ip6", tcp4, false},
		{"ip", tcp4, true},
		{"tcp", tcp4, true},
		{"tcp && udp", tcp4, false},
		{"tcp.dst == 80", tcp4, true},
		{"tcp.dst == {22, 80, 443}", tcp4, true},
		{"tcp.dst != 80", tcp4, false},
		{"tcp.dst != {22, 443}", tcp4, true},
		{"tcp.dst > 79 && tcp.dst < 81", tcp4, true},
		{"1024 <= tcp.src <= 65535", tcp4, true},
		{"tcp.src > 1234", tcp4, false},
		{"tcp.src >= 1234", tcp4, true},
		{"tcp.dst[0..3] == 0", tcp4, true},
		{"ip4.dst == 192.168.0.0/16", tcp4, true},
		{"ip4.dst == $as1", tcp4, true},
		{"ip4.src == $as1", tcp4, true},
		{"ip4.src == $big", tcp4, false},
		{"ip4.src == $empty", tcp4, false},
		{"ip4.src != $empty", tcp4, true},
		{"inport == @pg1", tcp4, true},
		{"inport == \"p2\"", tcp4, false},
		{"!(inport != \"p2\")", tcp4, false},
		{"inport == \"nonexistent\"", tcp4, false},
		{"eth.bcast", tcp4, true},
		{"eth.mcast", tcp4, true},
		{"ct.new && !ct.est", tcp4, true},
		{"ct.trk", tcp4, true},
		{"!(ct.rpl)", tcp4, true},
		{"reg0[15] == 0", tcp4, true},
		{"reg0[0]", tcp4, false},
		{"reg0 != 0", tcp4, false},
		{"ip.ttl == {0, 1}", tcp4, false},
		{"udp.dst == 53", tcp4, false},
		{"arp.op == 1 && arp.spa == 10.0.0.1", arpReq, true},
		{"arp.op == 1", tcp4, false},
		{"is_chassis_resident(\"p1\")", tcp4, true},
		{"(tcp || udp) && ip4.dst[24..31] == 192", tcp4, true},
		{"1", tcp4, true},
		{"0", tcp4, false},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) { require.Equal(t, tt.want, evalString(t, tt.expr, tt.pkt)) })
	}
}

func TestMatchErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"foo == 1", "Syntax error at `foo' expecting field name."},
		{"tcp.dst == 70000", "17-bit constant is not compatible with 16-bit field tcp.dst."},
		{"eth.type > 5", "Only == and != operators may be used with nominal field eth.type."},
		{"tcp.dst", "Explicit `!= 0' is required for inequality test of multibit field against 0."},
		{"tcp && udp || ip", "&& and || must be parenthesized when used together."},
		{"!tcp.dst == 80", "Missing parentheses around operand of !."},
		{"inport == 1", "String field inport is not compatible with integer constant."},
		{"ip4.src == $nosuch", "Syntax error at `$nosuch' expecting address set name."},
		{"outport == @nosuch", "Syntax error at `@nosuch' expecting port group name."},
		{"tcp.dst[3..1] == 0", "Invalid bit range 3 to 1."},
		{"tcp.dst[16] == 0", "Cannot select bits 16 to 16 of 16-bit field tcp.dst."},
		{"5 == tcp.dst == 6", "Range expressions must have the form `x < field < y' or `x > field > y', with each `<' optionally replaced by `<=' or `>' by `>=')."},
		{"tcp.dst > {1, 2}", "Only == and != operators may be used with value sets."},
		{"!ip4", "Nominal predicate ip4 may only be tested positively, e.g. `ip4' or `ip4 == 1' but not `!ip4' or `ip4 == 0'."},
		{"foo(1)", "parsing function name"},
		{"!(inport == \"p1\")", "Nominal field inport may only be tested for equality (taking enclosing `!' operators into account)."},
		{"inport != \"p1\"", "Nominal field inport may only be tested for equality (taking enclosing `!' operators into account)."},
		{"^tmpl == 1", "Unexpanded template."},
	}
	for _, tt := range tests {
		t.Run(tt.expr, func(t *testing.T) {
			_, err := parseExprString(tt.expr, sharedSymtab(), testNames{}, nil, 1)
			require.EqualError(t, err, tt.want)
		})
	}
}

func TestParenDepthBounded(t *testing.T) {
	deep := ""
	for i := 0; i < 200; i++ {
		deep += "("
	}
	_, err := parseExprString(deep+"1", sharedSymtab(), nil, nil, 0)
	require.EqualError(t, err, "Parentheses nested too deeply.")
}
