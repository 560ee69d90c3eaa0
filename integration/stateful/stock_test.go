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

func TestStockChassis(t *testing.T) {
	env := ovntest.Start(t)
	ch := stockchassis.Start(t, env.SBRemote(), "stock")
	res := RunScenario(t, stock{ch}, env)
	logConntrack(t, "stock", res.Conntrack)
	require.Equal(t, expected, res.Verdicts)
	require.NotEmpty(t, res.Conntrack)
}

func mustIP(t testing.TB, cidr string) net.IP {
	ip, _, err := net.ParseCIDR(cidr)
	require.NoError(t, err)
	return ip.To4()
}
