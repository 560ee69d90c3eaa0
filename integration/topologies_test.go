package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// topologies returns the differential suite: each an OVN configuration a
// network engineer would recognise, and packets that exercise it.
func topologies() []topology {
	return []topology{
		portSecurity(), acls(), switchLB(), router(), gateway(), unknownLocalnet(), ipv6(), dhcp(),
	}
}

// addLSP adds a VIF with addresses and, if ps is not empty, port security.
func addLSP(t *testing.T, c *ovntest.Central, ls, name, addrs, ps string) {
	args := []string{"lsp-add", ls, name, "--", "lsp-set-addresses", name, addrs}
	if ps != "" {
		args = append(args, "--", "lsp-set-port-security", name, ps)
	}
	c.NBCtl(t, args...)
}

// connect attaches router port lrp (MAC, networks...) of lr to switch ls.
func connect(t *testing.T, c *ovntest.Central, lr, lrp, ls, mac string, networks ...string) {
	c.NBCtl(t, append([]string{"lrp-add", lr, lrp, mac}, networks...)...)
	lsp := ls + "-" + lr
	c.NBCtl(t, "lsp-add", ls, lsp, "--", "lsp-set-type", lsp, "router", "--", "lsp-set-addresses", lsp, "router",
		"--", "lsp-set-options", lsp, "router-port="+lrp)
}

// addMACBinding records a learned neighbour in the Southbound, as
// ovn-controller would after resolving it.
func addMACBinding(t *testing.T, c *ovntest.Central, dpName, port, ip, mac string) {
	c.Sync(t)
	dp := strings.TrimSpace(c.SBCtl(t, "--bare", "--columns=_uuid", "find", "Datapath_Binding", "external_ids:name="+dpName))
	c.SBCtl(t, "create", "MAC_Binding", "logical_port="+port, "ip="+quoteIP(ip), fmt.Sprintf("mac=%q", mac), "datapath="+dp)
}

func quoteIP(ip string) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("%q", ip)
	}
	return ip
}

// --- 1. One switch with port security ------------------------------------

func portSecurity() topology {
	vm1 := host{"ps-vm1", "00:00:00:00:01:01", "10.1.0.11", "fd01::11"}
	vm2 := host{"ps-vm2", "00:00:00:00:01:02", "10.1.0.12", ""}
	vm3 := host{"ps-vm3", "00:00:00:00:01:03", "10.1.0.13", ""}
	vm4 := host{"ps-vm4", "00:00:00:00:01:04", "10.1.0.14", "fd01::14"}
	hosts := []host{vm1, vm2, vm3, vm4}
	var cases []traceCase
	add := func(f string, ct ...string) { cases = append(cases, traceCase{dp: "ls-ps", flow: f, ct: ct}) }
	for _, src := range hosts {
		for _, dst := range hosts {
			if src == dst {
				continue
			}
			add(and(l2(src.port, src.mac, dst.mac), icmp4Echo(src.ip4, dst.ip4, 64)))
			add(and(l2(src.port, src.mac, dst.mac), tcp4(src.ip4, dst.ip4, 33000, 443)))
			add(and(l2(src.port, "00:00:00:00:0e:ee", dst.mac), udp4(src.ip4, dst.ip4, 3000, 53)))
			add(and(l2(src.port, src.mac, dst.mac), udp4("10.1.0.99", dst.ip4, 3000, 53)))
		}
		add(and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.1.0.200")))
		add(and(l2(src.port, src.mac, bcastMAC), arpRequest("00:00:00:00:0e:ee", src.ip4, "10.1.0.11")))
		add(and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, "10.1.0.77", "10.1.0.12")))
		add(and(l2(src.port, src.mac, "00:00:00:00:0d:0d"), icmp4Echo(src.ip4, "10.1.0.250", 64)))
		add(and(l2(src.port, src.mac, bcastMAC), dhcpDiscover(src.mac)))
		add(and(l2(src.port, src.mac, "01:00:5e:00:00:fb"), udp4(src.ip4, "224.0.0.251", 5353, 5353)))
		add(and(l2(src.port, src.mac, "33:33:00:00:00:01"), icmp6Echo(linkLocal(src.mac), "ff02::1", 1)))
	}
	add(and(l2(vm1.port, vm1.mac, vm4.mac), icmp6Echo(vm1.ip6, vm4.ip6, 64)))
	add(and(l2(vm1.port, vm1.mac, vm4.mac), icmp6Echo("fd01::99", vm4.ip6, 64)))
	add(and(l2(vm4.port, vm4.mac, vm1.mac), tcp6(vm4.ip6, vm1.ip6, 22)))
	add(and(l2(vm4.port, vm4.mac, solicitedMAC(vm1.ip6)), ns(vm4.ip6, vm1.ip6, vm4.mac)))
	add(and(l2(vm4.port, vm4.mac, solicitedMAC(vm1.ip6)), ns(vm4.ip6, vm1.ip6, "00:00:00:00:0e:ee")))
	add(and(l2(vm4.port, vm4.mac, vm1.mac), na(vm4.ip6, vm1.ip6, vm4.ip6, vm4.mac)))
	add(and(l2(vm4.port, vm4.mac, vm1.mac), na(vm4.ip6, vm1.ip6, "fd01::77", vm4.mac)))
	add(and(l2(vm4.port, vm4.mac, vm3.mac), udp4("10.1.0.140", vm3.ip4, 1000, 2000)))
	return topology{
		name: "port-security",
		build: func(t *testing.T, c *ovntest.Central) {
			c.NBCtl(t, "ls-add", "ls-ps")
			addLSP(t, c, "ls-ps", vm1.port, "00:00:00:00:01:01 10.1.0.11 fd01::11", "00:00:00:00:01:01 10.1.0.11 fd01::11")
			addLSP(t, c, "ls-ps", vm2.port, "00:00:00:00:01:02 10.1.0.12", "00:00:00:00:01:02")
			addLSP(t, c, "ls-ps", vm3.port, "00:00:00:00:01:03 10.1.0.13", "")
			addLSP(t, c, "ls-ps", vm4.port, "00:00:00:00:01:04 10.1.0.14 fd01::14", "00:00:00:00:01:04 10.1.0.14 10.1.0.140 fd01::14")
		},
		cases: cases,
	}
}

// --- 2. ACLs on port groups with address sets -----------------------------

func acls() topology {
	web1 := host{"acl-web1", "00:00:00:00:02:01", "10.2.0.11", ""}
	web2 := host{"acl-web2", "00:00:00:00:02:02", "10.2.0.12", ""}
	db1 := host{"acl-db1", "00:00:00:00:02:03", "10.2.0.21", ""}
	client := host{"acl-client", "00:00:00:00:02:04", "10.2.0.31", ""}
	admin := host{"acl-admin", "00:00:00:00:02:05", "10.2.0.101", ""}
	all := []host{web1, web2, db1, client, admin}
	var cases []traceCase
	add := func(f string, ct ...string) { cases = append(cases, traceCase{dp: "ls-acl", flow: f, ct: ct}) }
	states := [][]string{{"new"}, {"est"}, {"est,rpl"}, {"new", "new"}, {"est", "est"}}
	for _, st := range states {
		for _, src := range []host{client, admin} {
			for _, web := range []host{web1, web2} {
				add(and(l2(src.port, src.mac, web.mac), tcp4Flags(src.ip4, web.ip4, 40000, 80, 2)), st...)
				add(and(l2(src.port, src.mac, web.mac), tcp4(src.ip4, web.ip4, 40000, 22)), st...)
			}
			add(and(l2(src.port, src.mac, db1.mac), tcp4(src.ip4, db1.ip4, 40000, 5432)), st...)
		}
		add(and(l2(web1.port, web1.mac, db1.mac), tcp4(web1.ip4, db1.ip4, 40001, 5432)), st...)
		add(and(l2(web2.port, web2.mac, db1.mac), tcp4(web2.ip4, db1.ip4, 40001, 5432)), st...)
		add(and(l2(web1.port, web1.mac, client.mac), tcp4(web1.ip4, client.ip4, 80, 40000)), st...)
		add(and(l2(db1.port, db1.mac, client.mac), udp4(db1.ip4, client.ip4, 5353, 53)), st...)
		add(and(l2(db1.port, db1.mac, web1.mac), icmp4Echo(db1.ip4, web1.ip4, 64)), st...)
	}
	for _, src := range all {
		add(and(l2(src.port, src.mac, web1.mac), tcp4(src.ip4, web1.ip4, 40000, 8080)), "new")
		add(and(l2(src.port, src.mac, web1.mac), udp4(src.ip4, web1.ip4, 40000, 8080)), "new")
		add(and(l2(src.port, src.mac, web2.mac), sctp4(src.ip4, web2.ip4, 8080)), "new")
		add(and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, web1.ip4)))
	}
	return topology{
		name: "acls",
		build: func(t *testing.T, c *ovntest.Central) {
			c.NBCtl(t, "ls-add", "ls-acl")
			for _, h := range all {
				addLSP(t, c, "ls-acl", h.port, h.mac+" "+h.ip4, "")
			}
			c.NBCtl(t, "pg-add", "web", web1.port, web2.port)
			c.NBCtl(t, "pg-add", "db", db1.port)
			c.NBCtl(t, "create", "Address_Set", "name=admins", `addresses="10.2.0.100/30"`)
			c.NBCtl(t, "acl-add", "web", "to-lport", "1002", "outport == @web && tcp.dst == 80", "allow-related")
			c.NBCtl(t, "--log", "--name=web-ssh", "--severity=info", "acl-add", "web", "to-lport", "1002",
				"outport == @web && ip4.src == $admins && tcp.dst == 22", "allow-related")
			c.NBCtl(t, "acl-add", "web", "to-lport", "1003", "outport == @web && (tcp.dst == 8080 || udp.dst == 8080 || sctp.dst == 8080)", "reject")
			c.NBCtl(t, "acl-add", "web", "to-lport", "1001", "outport == @web && ip", "drop")
			c.NBCtl(t, "acl-add", "db", "to-lport", "1002", "outport == @db && ip4.src == $web_ip4 && tcp.dst == 5432", "allow-related")
			c.NBCtl(t, "acl-add", "db", "to-lport", "1001", "outport == @db && ip", "drop")
			c.NBCtl(t, "acl-add", "db", "from-lport", "1002", "inport == @db && udp.src == 5353", "allow")
			c.NBCtl(t, "acl-add", "db", "from-lport", "1001", "inport == @db && ip4.dst == 10.2.0.11", "drop")
		},
		cases: cases,
	}
}

// --- 3. A switch load balancer --------------------------------------------

func switchLB() topology {
	c1 := host{"lb-c1", "00:00:00:00:03:01", "10.3.0.11", ""}
	c2 := host{"lb-c2", "00:00:00:00:03:02", "10.3.0.12", ""}
	b1 := host{"lb-b1", "00:00:00:00:03:11", "10.3.0.21", ""}
	b2 := host{"lb-b2", "00:00:00:00:03:12", "10.3.0.22", ""}
	b3 := host{"lb-b3", "00:00:00:00:03:13", "10.3.0.23", ""}
	all := []host{c1, c2, b1, b2, b3}
	const gwMAC = "00:00:00:00:03:ff"
	var cases []traceCase
	add := func(f, lb string, ct ...string) {
		cases = append(cases, traceCase{dp: "ls-lb", flow: f, ct: ct, lbDst: lb})
	}
	for _, src := range []host{c1, c2} {
		for _, b := range []host{b1, b2, b3} {
			add(and(l2(src.port, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.100", 41000, 80)), b.ip4+":8080", "new")
			add(and(l2(src.port, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.100", 41000, 80)), b.ip4+":8080", "est")
			add(and(l2(src.port, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.100", 41000, 80)), b.ip4+":8080", "new", "new")
		}
		for _, b := range []host{b1, b2} {
			add(and(l2(src.port, src.mac, gwMAC), udp4(src.ip4, "10.3.0.101", 41000, 53)), b.ip4+":53", "new")
			add(and(l2(src.port, src.mac, gwMAC), udp4(src.ip4, "10.3.0.101", 41000, 53)), b.ip4+":53", "est,rpl")
			add(and(l2(src.port, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.102", 41000, 443)), b.ip4, "new")
			add(and(l2(src.port, src.mac, gwMAC), icmp4Echo(src.ip4, "10.3.0.102", 64)), b.ip4, "new")
		}
		add(and(l2(src.port, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.100", 41000, 81)), "", "new")
		add(and(l2(src.port, src.mac, b1.mac), tcp4(src.ip4, b1.ip4, 41000, 8080)), "", "new")
		add(and(l2(src.port, src.mac, b1.mac), tcp4(src.ip4, b1.ip4, 41000, 8080)), "", "est")
		add(and(l2(src.port, src.mac, gwMAC), udp4(src.ip4, "10.3.0.100", 41000, 80)), "", "new")
	}
	// Hairpin: a backend reaching the VIP and being chosen itself.
	for _, b := range []host{b1, b2, b3} {
		add(and(l2(b.port, b.mac, gwMAC), tcp4(b.ip4, "10.3.0.100", 42000, 80)), b.ip4+":8080", "new")
		add(and(l2(b.port, b.mac, gwMAC), tcp4(b.ip4, "10.3.0.100", 42000, 80)), b1.ip4+":8080", "new")
		add(and(l2(b.port, b.mac, c1.mac), tcp4(b.ip4, c1.ip4, 8080, 41000)), "", "est,rpl")
		add(and(l2(b.port, b.mac, c1.mac), tcp4(b.ip4, c1.ip4, 8080, 41000)), "", "est,rpl,dnat")
	}
	for _, src := range all {
		add(and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.3.0.100")), "")
	}
	return topology{
		name: "switch-lb",
		build: func(t *testing.T, c *ovntest.Central) {
			c.NBCtl(t, "ls-add", "ls-lb")
			for _, h := range all {
				addLSP(t, c, "ls-lb", h.port, h.mac+" "+h.ip4, "")
			}
			c.NBCtl(t, "lb-add", "lb-web", "10.3.0.100:80", "10.3.0.21:8080,10.3.0.22:8080,10.3.0.23:8080", "tcp")
			c.NBCtl(t, "lb-add", "lb-dns", "10.3.0.101:53", "10.3.0.21:53,10.3.0.22:53", "udp")
			c.NBCtl(t, "lb-add", "lb-any", "10.3.0.102", "10.3.0.21,10.3.0.22")
			for _, lb := range []string{"lb-web", "lb-dns", "lb-any"} {
				c.NBCtl(t, "ls-lb-add", "ls-lb", lb)
			}
		},
		cases: cases,
	}
}

// --- 4. A router between two switches, with ARP resolution ---------------

func router() topology {
	a1 := host{"rt-a1", "00:00:00:00:04:11", "10.4.1.11", ""}
	a2 := host{"rt-a2", "00:00:00:00:04:12", "10.4.1.12", ""}
	b1 := host{"rt-b1", "00:00:00:00:04:21", "10.4.2.11", ""}
	const rmacA, rmacB = "00:00:00:00:04:01", "00:00:00:00:04:02"
	var cases []traceCase
	add := func(dp, f string, ct ...string) { cases = append(cases, traceCase{dp: dp, flow: f, ct: ct}) }
	for _, src := range []host{a1, a2} {
		for _, dst := range []string{b1.ip4, "10.4.2.50", "10.4.2.60", "10.4.2.1", "10.4.1.1", "192.168.77.1"} {
			add("ls-rt-a", and(l2(src.port, src.mac, rmacA), icmp4Echo(src.ip4, dst, 64)))
			add("ls-rt-a", and(l2(src.port, src.mac, rmacA), tcp4(src.ip4, dst, 30000, 80)))
			add("ls-rt-a", and(l2(src.port, src.mac, rmacA), udp4(src.ip4, dst, 30000, 161)))
		}
		add("ls-rt-a", and(l2(src.port, src.mac, rmacA), icmp4Echo(src.ip4, b1.ip4, 1)))
		add("ls-rt-a", and(l2(src.port, src.mac, rmacA), strings.Replace(udp4(src.ip4, b1.ip4, 30000, 33434), "ip.ttl == 64", "ip.ttl == 1", 1)))
		add("ls-rt-a", and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.4.1.1")))
		add("ls-rt-a", and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.4.1.200")))
		add("ls-rt-a", and(l2(src.port, src.mac, rmacA), arpReply(src.mac, src.ip4, rmacA, "10.4.1.1")))
		add("ls-rt-a", and(l2(src.port, src.mac, "00:00:00:00:04:99"), icmp4Echo(src.ip4, b1.ip4, 64)))
	}
	add("ls-rt-b", and(l2(b1.port, b1.mac, rmacB), icmp4Echo(b1.ip4, a1.ip4, 64)))
	add("ls-rt-b", and(l2(b1.port, b1.mac, rmacB), tcp4(b1.ip4, a2.ip4, 80, 30000)))
	add("ls-rt-b", and(l2(b1.port, b1.mac, rmacB), icmp4Echo(b1.ip4, "10.4.2.1", 64)))
	add("ls-rt-b", and(l2(b1.port, b1.mac, bcastMAC), arpRequest(b1.mac, b1.ip4, "10.4.2.1")))
	add("ls-rt-b", and(l2("rt-unk", "00:00:00:00:04:50", rmacB), icmp4Echo("10.4.2.50", a1.ip4, 64)))
	// Enter the router directly, as a packet from its port would.
	add("lr-rt", and(l2("lrp-rt-a", a1.mac, rmacA), icmp4Echo(a1.ip4, b1.ip4, 64)))
	add("lr-rt", and(l2("lrp-rt-b", b1.mac, rmacB), icmp4Echo(b1.ip4, "10.4.1.77", 64)))
	add("lr-rt", and(l2("lrp-rt-a", a1.mac, bcastMAC), arpRequest(a1.mac, a1.ip4, "10.4.1.1")))
	add("lr-rt", and(l2("lrp-rt-a", a1.mac, rmacA), arpReply(a1.mac, a1.ip4, rmacA, "10.4.1.1")))
	return topology{
		name: "router",
		build: func(t *testing.T, c *ovntest.Central) {
			c.NBCtl(t, "ls-add", "ls-rt-a")
			c.NBCtl(t, "ls-add", "ls-rt-b")
			c.NBCtl(t, "lr-add", "lr-rt")
			connect(t, c, "lr-rt", "lrp-rt-a", "ls-rt-a", rmacA, "10.4.1.1/24")
			connect(t, c, "lr-rt", "lrp-rt-b", "ls-rt-b", rmacB, "10.4.2.1/24")
			for _, h := range []host{a1, a2} {
				addLSP(t, c, "ls-rt-a", h.port, h.mac+" "+h.ip4, "")
			}
			addLSP(t, c, "ls-rt-b", b1.port, b1.mac+" "+b1.ip4, "")
			addLSP(t, c, "ls-rt-b", "rt-unk", "unknown", "")
			addMACBinding(t, c, "lr-rt", "lrp-rt-b", "10.4.2.50", "00:00:00:00:04:50")
		},
		cases: cases,
	}
}

// --- 5. A gateway router with SNAT and DNAT -------------------------------

func gateway() topology {
	v1 := host{"gw-v1", "00:00:00:00:05:11", "10.5.0.11", ""}
	v2 := host{"gw-v2", "00:00:00:00:05:12", "10.5.0.12", ""}
	const intMAC, extMAC, upMAC = "00:00:00:00:05:01", "00:00:00:00:05:02", "00:00:00:00:05:fe"
	var cases []traceCase
	add := func(dp, f string, ct ...string) { cases = append(cases, traceCase{dp: dp, flow: f, ct: ct}) }
	ctSeqs := [][]string{nil, {"new"}, {"new", "new"}, {"new", "new", "new"}, {"est", "est", "est"}, {"est,rpl", "est,rpl,dnat"}}
	for _, cs := range ctSeqs {
		for _, v := range []host{v1, v2} {
			add("ls-gw", and(l2(v.port, v.mac, intMAC), tcp4(v.ip4, "8.8.8.8", 50000, 443)), cs...)
			add("ls-gw", and(l2(v.port, v.mac, intMAC), udp4(v.ip4, "172.16.5.77", 50000, 53)), cs...)
		}
		add("ls-ext", and(l2("gw-ln", upMAC, extMAC), tcp4("8.8.8.8", "172.16.5.111", 443, 50000)), cs...)
		add("ls-ext", and(l2("gw-ln", upMAC, extMAC), tcp4("8.8.8.8", "172.16.5.112", 443, 22)), cs...)
		add("ls-ext", and(l2("gw-ln", upMAC, extMAC), tcp4("8.8.8.8", "172.16.5.100", 443, 50000)), cs...)
		add("ls-ext", and(l2("gw-ln", upMAC, extMAC), icmp4Echo("8.8.8.8", "172.16.5.1", 64)), cs...)
	}
	for _, tpa := range []string{"172.16.5.1", "172.16.5.100", "172.16.5.111", "172.16.5.112", "172.16.5.200"} {
		add("ls-ext", and(l2("gw-ln", upMAC, bcastMAC), arpRequest(upMAC, "172.16.5.254", tpa)))
	}
	add("ls-gw", and(l2(v1.port, v1.mac, intMAC), icmp4Echo(v1.ip4, "10.5.0.1", 64)))
	add("ls-gw", and(l2(v1.port, v1.mac, intMAC), icmp4Echo(v1.ip4, "172.16.5.1", 64)))
	add("ls-gw", and(l2(v1.port, v1.mac, intMAC), icmp4Echo(v1.ip4, "8.8.8.8", 1)))
	add("ls-gw", and(l2(v1.port, v1.mac, bcastMAC), arpRequest(v1.mac, v1.ip4, "10.5.0.1")))
	add("ls-gw", and(l2(v2.port, v2.mac, v1.mac), tcp4(v2.ip4, v1.ip4, 1, 2)))
	return topology{
		name: "gateway-router",
		build: func(t *testing.T, c *ovntest.Central) {
			c.SBCtl(t, "chassis-add", "gw-chassis", "geneve", "127.0.0.1")
			c.NBCtl(t, "lr-add", "lr-gw", "--", "set", "logical_router", "lr-gw", "options:chassis=gw-chassis")
			c.NBCtl(t, "ls-add", "ls-gw")
			c.NBCtl(t, "ls-add", "ls-ext")
			connect(t, c, "lr-gw", "lrp-gw-int", "ls-gw", intMAC, "10.5.0.1/24")
			connect(t, c, "lr-gw", "lrp-gw-ext", "ls-ext", extMAC, "172.16.5.1/24")
			c.NBCtl(t, "lsp-add", "ls-ext", "gw-ln", "--", "lsp-set-type", "gw-ln", "localnet",
				"--", "lsp-set-addresses", "gw-ln", "unknown", "--", "lsp-set-options", "gw-ln", "network_name=physnet")
			for _, h := range []host{v1, v2} {
				addLSP(t, c, "ls-gw", h.port, h.mac+" "+h.ip4, "")
			}
			c.NBCtl(t, "lr-nat-add", "lr-gw", "snat", "172.16.5.100", "10.5.0.0/24")
			c.NBCtl(t, "lr-nat-add", "lr-gw", "dnat_and_snat", "172.16.5.111", "10.5.0.11")
			c.NBCtl(t, "lr-nat-add", "lr-gw", "dnat", "172.16.5.112", "10.5.0.12")
			c.NBCtl(t, "lr-route-add", "lr-gw", "0.0.0.0/0", "172.16.5.254")
			addMACBinding(t, c, "lr-gw", "lrp-gw-ext", "172.16.5.254", upMAC)
		},
		cases: cases,
	}
}

// --- 6. Unknown addresses and a localnet port -----------------------------

func unknownLocalnet() topology {
	vm := host{"un-vm", "00:00:00:00:06:11", "10.6.0.11", ""}
	vm2 := host{"un-vm2", "00:00:00:00:06:12", "10.6.0.12", ""}
	const physMAC = "00:00:00:00:06:aa"
	var cases []traceCase
	add := func(f string, ct ...string) { cases = append(cases, traceCase{dp: "ls-un", flow: f, ct: ct}) }
	for _, in := range []host{vm, vm2, {"un-unk", "00:00:00:00:06:77", "10.6.0.77", ""}, {"un-ln", physMAC, "10.6.0.200", ""}} {
		for _, dstMAC := range []string{vm.mac, vm2.mac, "00:00:00:00:06:77", physMAC, bcastMAC, "01:00:5e:01:02:03", "00:00:00:00:06:99"} {
			add(and(l2(in.port, in.mac, dstMAC), icmp4Echo(in.ip4, "10.6.0.250", 64)))
			add(and(l2(in.port, in.mac, dstMAC), udp4(in.ip4, "10.6.0.250", 5000, 5001)))
		}
		add(and(l2(in.port, in.mac, bcastMAC), arpRequest(in.mac, in.ip4, vm.ip4)))
		add(and(l2(in.port, in.mac, bcastMAC), arpRequest(in.mac, in.ip4, "10.6.0.250")))
		add(and(l2(in.port, in.mac, vm.mac), arpReply(in.mac, in.ip4, vm.mac, vm.ip4)))
	}
	return topology{
		name: "unknown-localnet",
		build: func(t *testing.T, c *ovntest.Central) {
			c.NBCtl(t, "ls-add", "ls-un")
			addLSP(t, c, "ls-un", vm.port, vm.mac+" "+vm.ip4, "")
			addLSP(t, c, "ls-un", vm2.port, vm2.mac+" "+vm2.ip4, "")
			addLSP(t, c, "ls-un", "un-unk", "unknown", "")
			c.NBCtl(t, "lsp-add", "ls-un", "un-ln", "--", "lsp-set-type", "un-ln", "localnet",
				"--", "lsp-set-addresses", "un-ln", "unknown", "--", "lsp-set-options", "un-ln", "network_name=physnet")
		},
		cases: cases,
	}
}

// --- 7. IPv6 with neighbour discovery -------------------------------------

func ipv6() topology {
	h1 := host{"v6-h1", "00:00:00:00:07:11", "", "fd07:1::11"}
	h2 := host{"v6-h2", "00:00:00:00:07:12", "", "fd07:1::12"}
	h3 := host{"v6-h3", "00:00:00:00:07:21", "", "fd07:2::21"}
	const rmacA, rmacB = "00:00:00:00:07:01", "00:00:00:00:07:02"
	var cases []traceCase
	add := func(dp, f string, ct ...string) { cases = append(cases, traceCase{dp: dp, flow: f, ct: ct}) }
	for _, src := range []host{h1, h2} {
		ll := linkLocal(src.mac)
		peer := h2
		if src == h2 {
			peer = h1
		}
		add("ls-v6a", and(l2(src.port, src.mac, peer.mac), icmp6Echo(src.ip6, peer.ip6, 64)))
		add("ls-v6a", and(l2(src.port, src.mac, peer.mac), tcp6(src.ip6, peer.ip6, 443)))
		add("ls-v6a", and(l2(src.port, src.mac, peer.mac), udp6(src.ip6, peer.ip6, 1000, 53)))
		add("ls-v6a", and(l2(src.port, src.mac, solicitedMAC(peer.ip6)), ns(src.ip6, peer.ip6, src.mac)))
		add("ls-v6a", and(l2(src.port, src.mac, solicitedMAC(peer.ip6)), ns(ll, peer.ip6, src.mac)))
		add("ls-v6a", and(l2(src.port, src.mac, solicitedMAC("fd07:1::99")), ns(src.ip6, "fd07:1::99", src.mac)))
		add("ls-v6a", and(l2(src.port, src.mac, rmacA), na(src.ip6, "fd07:1::1", src.ip6, src.mac)))
		for _, dst := range []string{h3.ip6, "fd07:2::99", "fd07:2::1", "fd07:1::1", "fd07:9::1"} {
			add("ls-v6a", and(l2(src.port, src.mac, rmacA), icmp6Echo(src.ip6, dst, 64)))
			add("ls-v6a", and(l2(src.port, src.mac, rmacA), tcp6(src.ip6, dst, 80)))
			add("ls-v6a", and(l2(src.port, src.mac, rmacA), udp6(src.ip6, dst, 1000, 53)))
		}
		add("ls-v6a", and(l2(src.port, src.mac, rmacA), icmp6Echo(src.ip6, h3.ip6, 1)))
		add("ls-v6a", and(l2(src.port, src.mac, "33:33:00:00:00:01"), icmp6Echo(ll, "ff02::1", 1)))
	}
	add("ls-v6b", and(l2(h3.port, h3.mac, rmacB), icmp6Echo(h3.ip6, h1.ip6, 64)))
	add("ls-v6b", and(l2(h3.port, h3.mac, rmacB), tcp6(h3.ip6, h2.ip6, 22)))
	add("ls-v6b", and(l2(h3.port, h3.mac, rmacB), na(h3.ip6, "fd07:2::1", h3.ip6, h3.mac)))
	return topology{
		name: "ipv6-nd",
		build: func(t *testing.T, c *ovntest.Central) {
			c.NBCtl(t, "ls-add", "ls-v6a")
			c.NBCtl(t, "ls-add", "ls-v6b")
			c.NBCtl(t, "lr-add", "lr-v6")
			connect(t, c, "lr-v6", "lrp-v6a", "ls-v6a", rmacA, "fd07:1::1/64")
			connect(t, c, "lr-v6", "lrp-v6b", "ls-v6b", rmacB, "fd07:2::1/64")
			c.NBCtl(t, "set", "logical_router_port", "lrp-v6a", "ipv6_ra_configs:address_mode=slaac", "ipv6_ra_configs:send_periodic=false")
			c.NBCtl(t, "set", "logical_router_port", "lrp-v6b", "ipv6_ra_configs:address_mode=dhcpv6_stateful")
			for _, h := range []host{h1, h2} {
				addLSP(t, c, "ls-v6a", h.port, h.mac+" "+h.ip6, "")
			}
			addLSP(t, c, "ls-v6b", h3.port, h3.mac+" "+h3.ip6, "")
		},
		cases: cases,
	}
}

// --- 8. DHCP options --------------------------------------------------------

func dhcp() topology {
	d1 := host{"dh-d1", "00:00:00:00:08:11", "10.8.0.11", ""}
	d2 := host{"dh-d2", "00:00:00:00:08:12", "", "fd08::12"}
	d3 := host{"dh-d3", "00:00:00:00:08:13", "10.8.0.13", "fd08::13"}
	d4 := host{"dh-d4", "00:00:00:00:08:14", "10.8.0.14", ""}
	var cases []traceCase
	add := func(f string, ct ...string) { cases = append(cases, traceCase{dp: "ls-dh", flow: f, ct: ct}) }
	for _, h := range []host{d1, d2, d3, d4} {
		ll := linkLocal(h.mac)
		add(and(l2(h.port, h.mac, bcastMAC), dhcpDiscover(h.mac)))
		add(and(l2(h.port, h.mac, bcastMAC), "ip4.src == 0.0.0.0 && ip4.dst == 255.255.255.255 && ip.ttl == 64 && udp.src == 68 && udp.dst == 68"))
		add(and(l2(h.port, h.mac, "00:00:00:00:08:ff"), "ip4.src == 10.8.0.200 && ip4.dst == 10.8.0.1 && ip.ttl == 64 && udp.src == 68 && udp.dst == 67"))
		add(and(l2(h.port, h.mac, "33:33:00:01:00:02"), udp6(ll, "ff02::1:2", 546, 547)))
		add(and(l2(h.port, h.mac, "33:33:00:01:00:02"), udp6(ll, "ff02::1:2", 546, 548)))
		add(and(l2(h.port, h.mac, bcastMAC), arpRequest(h.mac, "10.8.0.99", "10.8.0.1")))
		for _, dst := range []host{d1, d3, d4} {
			if dst != h && h.ip4 != "" {
				add(and(l2(h.port, h.mac, dst.mac), udp4(h.ip4, dst.ip4, 5000, 53)))
			}
		}
	}
	return topology{
		name: "dhcp",
		build: func(t *testing.T, c *ovntest.Central) {
			c.NBCtl(t, "ls-add", "ls-dh")
			for _, h := range []host{d1, d2, d3, d4} {
				addLSP(t, c, "ls-dh", h.port, strings.TrimSpace(h.mac+" "+h.ip4+" "+h.ip6), "")
			}
			v4 := strings.TrimSpace(c.NBCtl(t, "create", "DHCP_Options", "cidr=10.8.0.0/24",
				`options="lease_time"="3600" "router"="10.8.0.1" "server_id"="10.8.0.1" "server_mac"="c0:ff:ee:00:08:01" "dns_server"="{8.8.8.8, 1.1.1.1}" "domain_name"="\"example.org\"" "mtu"="1400"`))
			v6 := strings.TrimSpace(c.NBCtl(t, "create", "DHCP_Options", `cidr="fd08::/64"`,
				`options="server_id"="00:00:00:00:08:02" "dns_server"="fd08::53"`))
			c.NBCtl(t, "lsp-set-dhcpv4-options", d1.port, v4)
			c.NBCtl(t, "lsp-set-dhcpv4-options", d3.port, v4)
			c.NBCtl(t, "lsp-set-dhcpv6-options", d2.port, v6)
			c.NBCtl(t, "lsp-set-dhcpv6-options", d3.port, v6)
		},
		cases: cases,
	}
}
