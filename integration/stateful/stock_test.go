package stateful

import (
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
	"github.com/ovsbpf/ovsbpf/internal/stockchassis"
)

// stock is the Chassis of a stock OVN chassis.
type stock struct{ ch *stockchassis.Chassis }

func (s stock) SystemID() string { return s.ch.SystemID }

func (s stock) AddVM(t testing.TB, lport, name, mac, cidr, gw string) *VM {
	ns := s.ch.AddVM(t, lport, name, mac, cidr, gw)
	return &VM{Name: lport, NS: ns, IP: mustIP(t, cidr)}
}

func (s stock) DumpConntrack(t testing.TB) string { return s.ch.DumpConntrack(t) }

func (s stock) CTZones(t testing.TB) map[string]int { return s.ch.CTZones(t) }

// expected is the verdict of every case on a correct chassis: the stock
// one passes it, and it is what ovsbpfd is held to.
var expected = map[string]string{
	"tcp vm1->b1:8080":                          "ok b1 from 10.0.0.11",
	"tcp vm3->b2:8080 (routed)":                 "ok b2 from 10.0.1.13",
	"icmp vm1->b1":                              "ok 2/2",
	"udp vm1->vm3:5353 reply":                   "ok vm3 from 10.0.0.11",
	"tcp vm1->vm3:7777 (closed port)":           "refused",
	"udp vm1->vm3:7777 (closed port)":           "refused",
	"tcp vm1->b1:9999 (port closed by ACL)":     "blocked",
	"tcp b1->vm1:5000 (unsolicited)":            "blocked",
	"icmp b1->vm1 (unsolicited)":                "blocked 0/2",
	"tcp vm3->vm1:5000 (unsolicited)":           "blocked",
	"udp vm3->vm1:5353 (unsolicited)":           "blocked",
	"lb vm1->10.0.100.100:80 x30":               "30/30 ok, each on one backend; backends b1 b2 b3; from 10.0.0.11",
	"router lb outside->192.168.100.100:80 x20": "20/20 ok, each on one backend; backends b2 b3; from 172.16.0.50",
	"hairpin b1->10.0.100.101:80":               "ok b1 from 10.0.100.101",
	"snat vm2->outside:9000":                    "ok outside from 172.16.0.100",
	"dnat outside->172.16.0.110:5000":           "ok vm1 from 172.16.0.50",
	"icmp outside->172.16.0.110":                "ok 2/2",
}

func startStock(t *testing.T, env *ovntest.Env) Chassis {
	return stock{stockchassis.Start(t, env.SBRemote(), "stock")}
}

// TestStockChassis runs the scenario on two stock chassis side by side,
// each on its own central, as the differential runs ovsbpfd beside one:
// both are held to the expected verdicts, which shows that the runs do not
// disturb each other. ovsbpfd joins as another entry of the map.
func TestStockChassis(t *testing.T) {
	Differential(t, map[string]StartFunc{"stock": startStock, "stock-again": startStock})
}

func TestNormaliseConntrack(t *testing.T) {
	for _, tc := range []struct {
		name, dump, want string
	}{
		{"empty", "", ""},
		{
			"zones named, ephemeral ports and ids starred, equal lines counted",
			"tcp,orig=(src=10.0.0.11,dst=10.0.0.21,sport=40001,dport=8080),reply=(src=10.0.0.21,dst=10.0.0.11,sport=8080,dport=40001),zone=3,protoinfo=(state=TIME_WAIT)\n" +
				"tcp,orig=(src=10.0.0.11,dst=10.0.0.21,sport=40002,dport=8080),reply=(src=10.0.0.21,dst=10.0.0.11,sport=8080,dport=40002),zone=3,protoinfo=(state=TIME_WAIT)\n" +
				"icmp,orig=(src=10.0.0.11,dst=10.0.0.21,id=7,type=8,code=0),reply=(src=10.0.0.21,dst=10.0.0.11,id=7,type=0,code=0),zone=9\n",
			"  1x icmp,orig=(src=10.0.0.11,dst=10.0.0.21,id=*,type=8,code=0),reply=(src=10.0.0.21,dst=10.0.0.11,id=*,type=0,code=0),zone=9\n" +
				"  2x tcp,orig=(src=10.0.0.11,dst=10.0.0.21,sport=*,dport=8080),reply=(src=10.0.0.21,dst=10.0.0.11,sport=8080,dport=*),zone=b1,protoinfo=(state=TIME_WAIT)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, NormaliseConntrack(tc.dump, map[int]string{3: "b1"}))
		})
	}
}

func mustIP(t testing.TB, cidr string) net.IP {
	ip, _, err := net.ParseCIDR(cidr)
	require.NoError(t, err)
	return ip.To4()
}

func TestConntrackDiff(t *testing.T) {
	a := "  2x tcp,orig=(src=10.0.0.11,dport=80),zone=vm1,protoinfo=(state=TIME_WAIT)\n  1x udp,orig=(src=10.0.0.11),zone=vm1"
	b := "  5x tcp,orig=(src=10.0.0.11,dport=80),zone=vm1,protoinfo=(state=ESTABLISHED)\n  1x icmp,orig=(src=10.0.0.11),zone=vm1"
	require.Equal(t, "- udp,orig=(src=10.0.0.11),zone=vm1\n+ icmp,orig=(src=10.0.0.11),zone=vm1", conntrackDiff(a, b),
		"counts and TCP states aside, the entries only one side holds")
	require.Empty(t, conntrackDiff(a, a))
}
