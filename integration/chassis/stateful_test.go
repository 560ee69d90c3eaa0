package chassis

import (
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// An allow-related ACL, forwarded by eBPF conntrack: vm1 may open TCP and
// ping towards vm2, and vm2's replies get back only as replies of those
// connections; nothing vm2 starts reaches vm1. Each VM's connections are
// tracked in the zone its logical port was given, as ovn-controller
// assigns and stores them.
func TestStatefulACL(t *testing.T) {
	c := ovntest.Start(t)
	c.NBCtl("ls-add", "sw0")
	for i := 1; i <= 2; i++ {
		c.NBCtl("lsp-add", "sw0", fmt.Sprintf("vm%d", i))
		c.NBCtl("lsp-set-addresses", fmt.Sprintf("vm%d", i), fmt.Sprintf("0a:00:00:00:00:0%d 10.0.0.%d", i, i))
	}
	// vm1 starts connections; into vm1 only replies may come.
	c.NBCtl("acl-add", "sw0", "from-lport", "1002", `inport == "vm1" && ip4`, "allow-related")
	c.NBCtl("acl-add", "sw0", "to-lport", "1001", `outport == "vm1" && ip4`, "drop")
	c.Sync()

	ch := startChassis(t, c.SBRemote(), "none")
	ch.db.VSCtl(t, "add-br", "br-int")
	vm1 := ch.addVM(t, "vm1", "tap1", "0a:00:00:00:00:01", "10.0.0.1")
	vm2 := ch.addVM(t, "vm2", "tap2", "0a:00:00:00:00:02", "10.0.0.2")

	// Zones, as ovn-controller keeps them in the integration bridge.
	zone := map[string]string{}
	require.Eventually(t, func() bool {
		for _, lp := range []string{"vm1", "vm2"} {
			out := ch.db.VSCtl(t, "br-get-external-id", "br-int", "ct-zone-"+lp)
			if strings.TrimSpace(out) == "" {
				return false
			}
			zone[lp] = strings.Trim(strings.TrimSpace(out), `"`)
		}
		return true
	}, 10*time.Second, 50*time.Millisecond, "zones stored for vm1 and vm2")
	require.NotEqual(t, zone["vm1"], zone["vm2"])

	t.Run("ping out, replies in", func(t *testing.T) {
		ping(t, vm1, vm2.ip, 1)
		ping(t, vm1, vm2.ip, 5)
	})
	t.Run("tcp out", func(t *testing.T) { tcpExchange(t, vm1, vm2, 64<<10) })
	t.Run("nothing started by vm2 gets in", func(t *testing.T) {
		out, _ := vm2.ns.Run("ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", vm1.ip.String())
		require.Contains(t, out, "3 packets transmitted, 0 received", out)
		require.Error(t, vm2.ns.Do(func() error {
			conn, err := net.DialTimeout("tcp4", vm1.ip.String()+":22", 2*time.Second)
			if err == nil {
				conn.Close()
			}
			return err
		}), "a TCP connection from vm2 is not answered, not even refused")
	})

	dump := ch.mustAppctl(t, "dpctl/dump-conntrack")
	t.Logf("dpctl/dump-conntrack:\n%s", dump)
	require.Regexp(t, `icmp,orig=\(src=10\.0\.0\.1,dst=10\.0\.0\.2,id=\d+,type=8,code=0\),reply=\(src=10\.0\.0\.2,dst=10\.0\.0\.1,id=\d+,type=0,code=0\),zone=`+zone["vm1"], dump)
	require.Regexp(t, `tcp,orig=\(src=10\.0\.0\.1,dst=10\.0\.0\.2,sport=\d+,dport=\d+\),reply=.*zone=`+zone["vm2"], dump,
		"the connection is tracked in both VMs' zones, as OVN commits it in ingress and egress")
	// The same through ovsbpfctl, and per zone.
	out, err := exec.Command(ovsbpfctl, "dpctl/dump-conntrack", "-t", ch.control).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, dump, string(out))
	inVM2 := ch.mustAppctl(t, "dpctl/dump-conntrack", "zone="+zone["vm2"])
	for _, line := range strings.Split(strings.TrimSpace(inVM2), "\n") {
		require.True(t, strings.HasSuffix(line, ",zone="+zone["vm2"]) || strings.Contains(line, ",zone="+zone["vm2"]+","),
			"zone=%s shows only that zone: %s", zone["vm2"], line)
	}
	// What vm2 started was committed on its way in (vm2's zone), and
	// dropped before vm1's egress could track it in vm1's.
	require.Regexp(t, `src=10\.0\.0\.2,dst=10\.0\.0\.1,.*zone=`+zone["vm2"], inVM2)
	require.NotRegexp(t, `(?m)orig=\(src=10\.0\.0\.2,dst=10\.0\.0\.1,.*zone=`+zone["vm1"]+`(,|$)`, dump)
	require.Contains(t, ch.mustAppctl(t, "dpctl/ct-stats-show"), "TCP: ")

	flows := ch.mustAppctl(t, "dpctl/dump-flows")
	require.Contains(t, flows, "ct(params=", "megaflows run conntrack in the datapath")
	require.Contains(t, flows, "recirc(", "and recirculate")
	show := ch.mustAppctl(t, "upcall/show")
	require.Contains(t, show, "0 packets back at an unknown id", show)
}
