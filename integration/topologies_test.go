package integration

import (
	"fmt"
	"strings"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// topologies returns the differential suite: each an OVN configuration a
// network engineer would recognise, built through ovn-nbctl (and
// ovn-sbctl where ovn-controller would write), with packets that exercise
// it. Every IP packet gives ip.ttl: ovn-trace defaults fields to 0.
func topologies() []topology {
	return []topology{
		portSecurity(), acls(), switchLB(), router(), gateway(), unknownLocalnet(), ipv6(), dhcp(),
		routerChain(), routerLB(), multicast(),
	}
}

// addLSP adds a VIF with addresses and, if ps is not empty, port security.
func addLSP(e *ovntest.Env, ls, name, addrs, ps string) {
	args := []string{"lsp-add", ls, name, "--", "lsp-set-addresses", name, addrs}
	if ps != "" {
		args = append(args, "--", "lsp-set-port-security", name, ps)
	}
	e.NBCtl(args...)
}

// addHost adds h as a VIF whose addresses are its MAC and IPs.
func addHost(e *ovntest.Env, ls string, h host) {
	addLSP(e, ls, h.port, h.addrs(), "")
}

func (h host) addrs() string { return strings.Join(strings.Fields(h.mac+" "+h.ip4+" "+h.ip6), " ") }

// addLocalnet adds a localnet port to the physical network name.
func addLocalnet(e *ovntest.Env, ls, port, network string) {
	e.NBCtl("lsp-add", ls, port, "--", "lsp-set-type", port, "localnet",
		"--", "lsp-set-addresses", port, "unknown", "--", "lsp-set-options", port, "network_name="+network)
}

// connect attaches router port lrp (MAC, networks...) of lr to switch ls.
func connect(e *ovntest.Env, lr, lrp, ls, mac string, networks ...string) {
	e.NBCtl(append([]string{"lrp-add", lr, lrp, mac}, networks...)...)
	lsp := ls + "-" + lrp
	e.NBCtl("lsp-add", ls, lsp, "--", "lsp-set-type", lsp, "router", "--", "lsp-set-addresses", lsp, "router",
		"--", "lsp-set-options", lsp, "router-port="+lrp)
}

// addSBMACBinding writes a learned neighbour to the Southbound, as
// ovn-controller does after resolving it.
func addSBMACBinding(e *ovntest.Env, dpName, port, ip, mac string) {
	e.Sync()
	dp := strings.TrimSpace(e.SBCtl("--bare", "--columns=_uuid", "find", "Datapath_Binding", "external_ids:name="+dpName))
	e.SBCtl("create", "MAC_Binding", "logical_port="+port, "ip="+quoteIP(ip), fmt.Sprintf("mac=%q", mac), "datapath="+dp)
}

func quoteIP(ip string) string {
	if strings.Contains(ip, ":") {
		return fmt.Sprintf("%q", ip)
	}
	return ip
}

// --- (a) one switch with port security ---------------------------------------

func portSecurity() topology {
	vm1 := host{"ps-vm1", "00:00:00:00:01:01", "10.1.0.11", "fd01::11"} // MAC, IPv4 and IPv6 enforced
	vm2 := host{"ps-vm2", "00:00:00:00:01:02", "10.1.0.12", ""}         // MAC only
	vm3 := host{"ps-vm3", "00:00:00:00:01:03", "10.1.0.13", ""}         // no port security
	vm4 := host{"ps-vm4", "00:00:00:00:01:04", "10.1.0.14", "fd01::14"} // an extra allowed IPv4
	vm5 := host{"ps-vm5", "00:00:00:00:01:05", "10.1.0.165", ""}        // "10.1.0.165/28": that address only
	vm6 := host{"ps-vm6", "00:00:00:00:01:06", "10.1.0.166", ""}        // "10.1.0.160/28": a whole subnet
	hosts := []host{vm1, vm2, vm3, vm4, vm5}
	const spoofMAC, strangerMAC = "00:00:00:00:0e:ee", "00:00:00:00:0d:0d"
	l := caseList{dp: "ls-ps"}
	for i, src := range hosts {
		dst := hosts[(i+1)%len(hosts)]
		p := src.port
		l.add(p+" ping "+dst.port, and(l2(p, src.mac, dst.mac), icmp4Echo(src.ip4, dst.ip4, 64)))
		l.add(p+" tcp "+dst.port, and(l2(p, src.mac, dst.mac), tcp4(src.ip4, dst.ip4, 33000, 443)))
		l.add(p+" spoofed source MAC", and(l2(p, spoofMAC, dst.mac), udp4(src.ip4, dst.ip4, 3000, 53)))
		l.add(p+" spoofed source IPv4", and(l2(p, src.mac, dst.mac), udp4("10.1.0.99", dst.ip4, 3000, 53)))
		l.add(p+" to the wrong IPv4 of "+dst.port, and(l2(p, src.mac, dst.mac), udp4(src.ip4, "10.1.0.98", 3000, 53)))
		l.add(p+" ARP request", and(l2(p, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, dst.ip4)))
		l.add(p+" ARP request for an unknown IP", and(l2(p, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.1.0.200")))
		l.add(p+" ARP with a spoofed sha", and(l2(p, src.mac, bcastMAC), arpRequest(spoofMAC, src.ip4, dst.ip4)))
		l.add(p+" ARP with a spoofed spa", and(l2(p, src.mac, bcastMAC), arpRequest(src.mac, "10.1.0.77", dst.ip4)))
		l.add(p+" ARP reply", and(l2(p, src.mac, dst.mac), arpReply(src.mac, src.ip4, dst.mac, dst.ip4)))
		l.add(p+" to an unknown MAC", and(l2(p, src.mac, strangerMAC), icmp4Echo(src.ip4, "10.1.0.250", 64)))
		l.add(p+" IPv4 broadcast", and(l2(p, src.mac, bcastMAC), udp4(src.ip4, "10.1.0.255", 137, 137)))
		l.add(p+" DHCP discover", and(l2(p, src.mac, bcastMAC), dhcpDiscover()))
		l.add(p+" mDNS", and(l2(p, src.mac, "01:00:5e:00:00:fb"), udp4(src.ip4, "224.0.0.251", 5353, 5353)))
		l.add(p+" IPv6 from link-local to all-nodes", and(l2(p, src.mac, "33:33:00:00:00:01"), icmp6Echo(linkLocal(src.mac), "ff02::1", 1)))
		l.add(p+" IPv6 from a foreign link-local", and(l2(p, src.mac, "33:33:00:00:00:01"), icmp6Echo(linkLocal(spoofMAC), "ff02::1", 1)))
	}
	l.add("vm1 ping6 vm4", and(l2(vm1.port, vm1.mac, vm4.mac), icmp6Echo(vm1.ip6, vm4.ip6, 64)))
	l.add("vm1 ping6 from a spoofed IPv6", and(l2(vm1.port, vm1.mac, vm4.mac), icmp6Echo("fd01::99", vm4.ip6, 64)))
	l.add("vm4 tcp6 to vm1", and(l2(vm4.port, vm4.mac, vm1.mac), tcp6(vm4.ip6, vm1.ip6, 22)))
	l.add("vm4 tcp6 to the wrong IPv6 of vm1", and(l2(vm4.port, vm4.mac, vm1.mac), tcp6(vm4.ip6, "fd01::98", 22)))
	l.add("vm4 NS for vm1", and(l2(vm4.port, vm4.mac, solicitedMAC(vm1.ip6)), ns(vm4.ip6, vm1.ip6, vm4.mac)))
	l.add("vm4 NS with a spoofed sll", and(l2(vm4.port, vm4.mac, solicitedMAC(vm1.ip6)), ns(vm4.ip6, vm1.ip6, spoofMAC)))
	l.add("vm4 DAD NS from ::", and(l2(vm4.port, vm4.mac, solicitedMAC(vm4.ip6)), ns("::", vm4.ip6, "00:00:00:00:00:00")))
	l.add("vm4 NA for itself", and(l2(vm4.port, vm4.mac, vm1.mac), na(vm4.ip6, vm1.ip6, vm4.ip6, vm4.mac)))
	l.add("vm4 NA for a foreign target", and(l2(vm4.port, vm4.mac, vm1.mac), na(vm4.ip6, vm1.ip6, "fd01::77", vm4.mac)))
	l.add("vm4 NA with a spoofed tll", and(l2(vm4.port, vm4.mac, vm1.mac), na(vm4.ip6, vm1.ip6, vm4.ip6, spoofMAC)))
	l.add("vm4 from its extra IPv4", and(l2(vm4.port, vm4.mac, vm3.mac), udp4("10.1.0.140", vm3.ip4, 1000, 2000)))
	l.add("vm5 from another IPv4 in its prefix (host bits set: refused)", and(l2(vm5.port, vm5.mac, vm3.mac), udp4("10.1.0.170", vm3.ip4, 1000, 2000)))
	l.add("vm5 from outside its prefix", and(l2(vm5.port, vm5.mac, vm3.mac), udp4("10.1.0.180", vm3.ip4, 1000, 2000)))
	l.add("vm3 to an IPv4 in vm5's prefix", and(l2(vm3.port, vm3.mac, vm5.mac), udp4(vm3.ip4, "10.1.0.170", 1000, 2000)))
	// ovn-trace 23.03 compares a port security IPv4 with the packet's
	// exactly, ignoring the prefix length, so it refuses a subnet's other
	// addresses that ovn-controller would let through.
	l.add("vm6 from its own IPv4 in a PS subnet (ovn-trace: refused)", and(l2(vm6.port, vm6.mac, vm3.mac), udp4(vm6.ip4, vm3.ip4, 1000, 2000)))
	l.add("vm6 from the PS subnet's network address", and(l2(vm6.port, vm6.mac, vm3.mac), udp4("10.1.0.160", vm3.ip4, 1000, 2000)))
	l.add("vm6 ARP from its IPv4 in a PS subnet", and(l2(vm6.port, vm6.mac, bcastMAC), arpRequest(vm6.mac, vm6.ip4, vm3.ip4)))
	l.add("vm6 DHCP discover", and(l2(vm6.port, vm6.mac, bcastMAC), dhcpDiscover()))
	l.add("vm3 to vm6", and(l2(vm3.port, vm3.mac, vm6.mac), udp4(vm3.ip4, vm6.ip4, 1000, 2000)))
	l.add("vm3 to vm1 at a foreign IPv4", and(l2(vm3.port, vm3.mac, vm1.mac), icmp4Echo(vm3.ip4, "10.1.0.88", 64)))
	l.add("vm3 to vm1 broadcast IPv4", and(l2(vm3.port, vm3.mac, bcastMAC), icmp4Echo(vm3.ip4, "255.255.255.255", 64)))
	return topology{
		name: "port-security",
		build: func(e *ovntest.Env) {
			e.NBCtl("ls-add", "ls-ps")
			addLSP(e, "ls-ps", vm1.port, vm1.addrs(), vm1.addrs())
			addLSP(e, "ls-ps", vm2.port, vm2.addrs(), vm2.mac)
			addLSP(e, "ls-ps", vm3.port, vm3.addrs(), "")
			addLSP(e, "ls-ps", vm4.port, vm4.addrs(), vm4.mac+" 10.1.0.14 10.1.0.140 fd01::14")
			addLSP(e, "ls-ps", vm5.port, vm5.addrs(), vm5.mac+" 10.1.0.165/28")
			addLSP(e, "ls-ps", vm6.port, vm6.addrs(), vm6.mac+" 10.1.0.160/28")
		},
		cases: l.cases,
	}
}

// --- (b) ACLs on port groups with address sets -------------------------------

func acls() topology {
	web1 := host{"acl-web1", "00:00:00:00:02:01", "10.2.0.11", "fd02::11"}
	web2 := host{"acl-web2", "00:00:00:00:02:02", "10.2.0.12", "fd02::12"}
	db1 := host{"acl-db1", "00:00:00:00:02:03", "10.2.0.21", ""}
	client := host{"acl-client", "00:00:00:00:02:04", "10.2.0.31", "fd02::31"}
	admin := host{"acl-admin", "00:00:00:00:02:05", "10.2.0.101", ""}
	all := []host{web1, web2, db1, client, admin}
	l := caseList{dp: "ls-acl"}
	states := [][]string{{"new"}, {"est"}, {"est,rpl"}, {"new", "new"}, {"est", "est"}, {"rel"}, {"inv"}}
	for _, st := range states {
		s := strings.Join(st, "/")
		for _, src := range []host{client, admin} {
			l.add(src.port+" web1:80 "+s, and(l2(src.port, src.mac, web1.mac), tcp4Flags(src.ip4, web1.ip4, 40000, 80, 2)), ct(st...))
			l.add(src.port+" web2:22 "+s, and(l2(src.port, src.mac, web2.mac), tcp4(src.ip4, web2.ip4, 40000, 22)), ct(st...))
			l.add(src.port+" db1:5432 "+s, and(l2(src.port, src.mac, db1.mac), tcp4(src.ip4, db1.ip4, 40000, 5432)), ct(st...))
		}
		l.add("web1 db1:5432 "+s, and(l2(web1.port, web1.mac, db1.mac), tcp4(web1.ip4, db1.ip4, 40001, 5432)), ct(st...))
		l.add("web1 reply to client "+s, and(l2(web1.port, web1.mac, client.mac), tcp4(web1.ip4, client.ip4, 80, 40000)), ct(st...))
		l.add("db1 udp 5353 out "+s, and(l2(db1.port, db1.mac, client.mac), udp4(db1.ip4, client.ip4, 5353, 53)), ct(st...))
		l.add("client ping web1 "+s, and(l2(client.port, client.mac, web1.mac), icmp4Echo(client.ip4, web1.ip4, 64)), ct(st...))
		l.add("client to blocked "+s, and(l2(client.port, client.mac, admin.mac), udp4(client.ip4, "198.51.100.7", 40000, 53)), ct(st...))
	}
	for _, src := range all {
		l.add(src.port+" tcp 8080 rejected", and(l2(src.port, src.mac, web1.mac), tcp4(src.ip4, web1.ip4, 40000, 8080)), ct("new"))
		l.add(src.port+" udp 8080 rejected", and(l2(src.port, src.mac, web1.mac), udp4(src.ip4, web1.ip4, 40000, 8080)), ct("new"))
		l.add(src.port+" sctp 8080 rejected", and(l2(src.port, src.mac, web2.mac), sctp4(src.ip4, web2.ip4, 8080)), ct("new"))
		l.add(src.port+" ARP for web1", and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, web1.ip4)))
	}
	l.add("client tcp6 web1:80 new", and(l2(client.port, client.mac, web1.mac), tcp6(client.ip6, web1.ip6, 80)), ct("new"))
	l.add("client tcp6 web1:443 new (dropped)", and(l2(client.port, client.mac, web1.mac), tcp6(client.ip6, web1.ip6, 443)), ct("new"))
	l.add("client tcp6 web2:8080 rejected", and(l2(client.port, client.mac, web2.mac), tcp6(client.ip6, web2.ip6, 8080)), ct("new"))
	l.add("client udp6 web2:8080 rejected", and(l2(client.port, client.mac, web2.mac), udp6(client.ip6, web2.ip6, 40000, 8080)), ct("new"))
	l.add("client ping6 web2 new", and(l2(client.port, client.mac, web2.mac), icmp6Echo(client.ip6, web2.ip6, 64)), ct("new"))
	l.add("client ntp stateless", and(l2(client.port, client.mac, db1.mac), udp4(client.ip4, db1.ip4, 123, 123)))
	l.add("client ntp stateless est", and(l2(client.port, client.mac, db1.mac), udp4(client.ip4, db1.ip4, 123, 123)), ct("est"))
	return topology{
		name: "acls",
		build: func(e *ovntest.Env) {
			e.NBCtl("ls-add", "ls-acl")
			for _, h := range all {
				addHost(e, "ls-acl", h)
			}
			e.NBCtl("pg-add", "web", web1.port, web2.port)
			e.NBCtl("pg-add", "db", db1.port)
			e.NBCtl("pg-add", "clients", client.port, admin.port)
			e.NBCtl("create", "Address_Set", "name=admins", `addresses="10.2.0.100/30"`)
			e.NBCtl("create", "Address_Set", "name=blocked", `addresses=["198.51.100.0/24", "10.2.0.200"]`)
			// to-lport: what may reach the web and database servers.
			e.NBCtl("acl-add", "web", "to-lport", "1002", "outport == @web && tcp.dst == 80", "allow-related")
			e.NBCtl("--log", "--name=web-ssh", "--severity=info", "acl-add", "web", "to-lport", "1002",
				"outport == @web && ip4.src == $admins && tcp.dst == 22", "allow-related")
			e.NBCtl("acl-add", "web", "to-lport", "1002", "outport == @web && icmp", "allow-related")
			e.NBCtl("acl-add", "web", "to-lport", "1003", "outport == @web && (tcp.dst == 8080 || udp.dst == 8080 || sctp.dst == 8080)", "reject")
			e.NBCtl("acl-add", "web", "to-lport", "1001", "outport == @web && ip", "drop")
			e.NBCtl("acl-add", "db", "to-lport", "1002", "outport == @db && ip4.src == $web_ip4 && tcp.dst == 5432", "allow-related")
			e.NBCtl("acl-add", "db", "to-lport", "1002", "outport == @db && udp.dst == 123", "allow-stateless")
			e.NBCtl("acl-add", "db", "to-lport", "1001", "outport == @db && ip", "drop")
			// from-lport: what the database and the clients may send.
			e.NBCtl("acl-add", "db", "from-lport", "1002", "inport == @db && udp.src == 5353", "allow")
			e.NBCtl("acl-add", "db", "from-lport", "1001", "inport == @db && ip4.dst == 10.2.0.11", "drop")
			e.NBCtl("acl-add", "clients", "from-lport", "1003", "inport == @clients && udp.dst == 123", "allow-stateless")
			e.NBCtl("acl-add", "clients", "from-lport", "1002", "inport == @clients && ip4.dst == $blocked", "drop")
			e.NBCtl("acl-add", "clients", "from-lport", "1001", "inport == @clients && ip", "allow-related")
		},
		cases: l.cases,
	}
}

// --- (c) a switch load balancer ----------------------------------------------

func switchLB() topology {
	c1 := host{"lb-c1", "00:00:00:00:03:01", "10.3.0.11", "fd03::11"}
	c2 := host{"lb-c2", "00:00:00:00:03:02", "10.3.0.12", ""}
	b1 := host{"lb-b1", "00:00:00:00:03:11", "10.3.0.21", "fd03::21"}
	b2 := host{"lb-b2", "00:00:00:00:03:12", "10.3.0.22", "fd03::22"}
	b3 := host{"lb-b3", "00:00:00:00:03:13", "10.3.0.23", ""}
	all := []host{c1, c2, b1, b2, b3}
	const gwMAC = "00:00:00:00:03:ff" // the clients' default router, lr-lb
	l := caseList{dp: "ls-lb"}
	for _, src := range []host{c1, c2} {
		p := src.port
		for _, b := range []host{b1, b2, b3} {
			l.add(p+" tcp VIP:80 new → "+b.port, and(l2(p, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.100", 41000, 80)), lb(b.ip4+":8080"), ct("new"))
			l.add(p+" tcp VIP:80 est → "+b.port, and(l2(p, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.100", 41000, 80)), lb(b.ip4+":8080"), ct("est"))
			l.add(p+" tcp VIP:80 new,new → "+b.port, and(l2(p, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.100", 41000, 80)), lb(b.ip4+":8080"), ct("new", "new"))
		}
		for _, b := range []host{b1, b2} {
			l.add(p+" udp VIP:53 new → "+b.port, and(l2(p, src.mac, gwMAC), udp4(src.ip4, "10.3.0.101", 41000, 53)), lb(b.ip4+":53"), ct("new"))
			l.add(p+" udp VIP:53 est,rpl → "+b.port, and(l2(p, src.mac, gwMAC), udp4(src.ip4, "10.3.0.101", 41000, 53)), lb(b.ip4+":53"), ct("est,rpl"))
			l.add(p+" tcp port-less VIP → "+b.port, and(l2(p, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.102", 41000, 443)), lb(b.ip4), ct("new"))
			l.add(p+" ping port-less VIP → "+b.port, and(l2(p, src.mac, gwMAC), icmp4Echo(src.ip4, "10.3.0.102", 64)), lb(b.ip4), ct("new"))
		}
		l.add(p+" tcp VIP on a port it does not balance", and(l2(p, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.100", 41000, 81)), ct("new"))
		l.add(p+" udp to the tcp VIP", and(l2(p, src.mac, gwMAC), udp4(src.ip4, "10.3.0.100", 41000, 80)), ct("new"))
		l.add(p+" tcp to a non-VIP address", and(l2(p, src.mac, gwMAC), tcp4(src.ip4, "10.3.0.150", 41000, 80)), ct("new"))
		l.add(p+" direct to b1 new", and(l2(p, src.mac, b1.mac), tcp4(src.ip4, b1.ip4, 41000, 8080)), ct("new"))
		l.add(p+" direct to b1 est", and(l2(p, src.mac, b1.mac), tcp4(src.ip4, b1.ip4, 41000, 8080)), ct("est"))
	}
	for _, b := range []host{b1, b2} {
		l.add("c1 tcp6 VIP new → "+b.port, and(l2(c1.port, c1.mac, gwMAC), tcp6(c1.ip6, "fd03::100", 80)), lb("["+b.ip6+"]:8080"), ct("new"))
		l.add("c1 tcp6 VIP est → "+b.port, and(l2(c1.port, c1.mac, gwMAC), tcp6(c1.ip6, "fd03::100", 80)), lb("["+b.ip6+"]:8080"), ct("est"))
	}
	l.add("c1 tcp6 VIP on another port", and(l2(c1.port, c1.mac, gwMAC), tcp6(c1.ip6, "fd03::100", 81)), ct("new"))
	// Hairpin: a backend reaching the VIP, sometimes chosen itself.
	for _, b := range []host{b1, b2, b3} {
		l.add(b.port+" to VIP, hairpinned to itself", and(l2(b.port, b.mac, gwMAC), tcp4(b.ip4, "10.3.0.100", 42000, 80)), lb(b.ip4+":8080"), ct("new"))
		if b != b1 {
			l.add(b.port+" to VIP, sent to b1", and(l2(b.port, b.mac, gwMAC), tcp4(b.ip4, "10.3.0.100", 42000, 80)), lb(b1.ip4+":8080"), ct("new"))
		}
		l.add(b.port+" reply est,rpl", and(l2(b.port, b.mac, c1.mac), tcp4(b.ip4, c1.ip4, 8080, 41000)), ct("est,rpl"))
		l.add(b.port+" reply est,rpl,dnat", and(l2(b.port, b.mac, c1.mac), tcp4(b.ip4, c1.ip4, 8080, 41000)), ct("est,rpl,dnat"))
	}
	for _, src := range all {
		l.add(src.port+" ARP for the VIP", and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.3.0.100")))
		l.add(src.port+" ARP for the router", and(l2(src.port, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.3.0.1")))
	}
	l.add("router: to the VIP", and(l2("lrp-lb", "00:00:00:00:03:01", gwMAC), tcp4("10.3.0.11", "10.3.0.100", 41000, 80)), lb("10.3.0.22:8080"), ct("new"), on("lr-lb"))
	return topology{
		name: "switch-lb",
		build: func(e *ovntest.Env) {
			e.NBCtl("ls-add", "ls-lb")
			for _, h := range all {
				addHost(e, "ls-lb", h)
			}
			// The clients' default router: after the switch balances a
			// VIP, the packet goes to the router MAC and is routed back.
			e.NBCtl("lr-add", "lr-lb")
			connect(e, "lr-lb", "lrp-lb", "ls-lb", gwMAC, "10.3.0.1/24", "fd03::1/64")
			e.NBCtl("lb-add", "lb-web", "10.3.0.100:80", "10.3.0.21:8080,10.3.0.22:8080,10.3.0.23:8080", "tcp")
			e.NBCtl("lb-add", "lb-dns", "10.3.0.101:53", "10.3.0.21:53,10.3.0.22:53", "udp")
			e.NBCtl("lb-add", "lb-any", "10.3.0.102", "10.3.0.21,10.3.0.22")
			e.NBCtl("lb-add", "lb-web6", "[fd03::100]:80", "[fd03::21]:8080,[fd03::22]:8080", "tcp")
			for _, lb := range []string{"lb-web", "lb-dns", "lb-any", "lb-web6"} {
				e.NBCtl("ls-lb-add", "ls-lb", lb)
			}
		},
		cases: l.cases,
	}
}

// --- (d) a router between two switches, with ARP resolution ----------------

func router() topology {
	a1 := host{"rt-a1", "00:00:00:00:04:11", "10.4.1.11", ""}
	a2 := host{"rt-a2", "00:00:00:00:04:12", "10.4.1.12", ""}
	b1 := host{"rt-b1", "00:00:00:00:04:21", "10.4.2.11", ""}
	const rmacA, rmacB = "00:00:00:00:04:01", "00:00:00:00:04:02"
	// 10.4.2.50 has a MAC_Binding in the SB (learned), 10.4.2.51 a
	// Static_MAC_Binding in the NB; 10.4.2.60 is unresolved. Northd hands
	// static bindings to ovn-controller (SB Static_MAC_Binding), not to
	// logical flows, and ovn-trace 23.03 does not read them: it resolves
	// 10.4.2.51 with arp{} as if it were unknown.
	l := caseList{dp: "ls-rt-a"}
	for _, src := range []host{a1, a2} {
		p := src.port
		for _, dst := range []struct{ ip, what string }{
			{b1.ip4, "b1"}, {"10.4.2.50", "learned neighbour"}, {"10.4.2.51", "static neighbour (ovn-trace: unresolved)"},
			{"10.4.2.60", "unresolved neighbour"}, {"10.4.2.1", "the far router IP"}, {"10.4.1.1", "the near router IP"},
			{"192.168.77.1", "an unrouted network"},
		} {
			l.add(p+" ping "+dst.what, and(l2(p, src.mac, rmacA), icmp4Echo(src.ip4, dst.ip, 64)))
			l.add(p+" tcp "+dst.what, and(l2(p, src.mac, rmacA), tcp4(src.ip4, dst.ip, 30000, 80)))
			l.add(p+" udp "+dst.what, and(l2(p, src.mac, rmacA), udp4(src.ip4, dst.ip, 30000, 161)))
		}
		l.add(p+" ping b1 with TTL 1", and(l2(p, src.mac, rmacA), icmp4Echo(src.ip4, b1.ip4, 1)))
		l.add(p+" traceroute probe TTL 1", and(l2(p, src.mac, rmacA), withTTL(udp4(src.ip4, b1.ip4, 30000, 33434), 1)))
		l.add(p+" ping the router with TTL 1", and(l2(p, src.mac, rmacA), icmp4Echo(src.ip4, "10.4.1.1", 1)))
		l.add(p+" ARP for the router", and(l2(p, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.4.1.1")))
		l.add(p+" ARP for the far router IP", and(l2(p, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.4.2.1")))
		l.add(p+" ARP for an unknown IP", and(l2(p, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, "10.4.1.200")))
		l.add(p+" ARP reply to the router", and(l2(p, src.mac, rmacA), arpReply(src.mac, src.ip4, rmacA, "10.4.1.1")))
		l.add(p+" gratuitous ARP", and(l2(p, src.mac, bcastMAC), arpRequest(src.mac, src.ip4, src.ip4)))
		l.add(p+" to b1 through a wrong MAC", and(l2(p, src.mac, "00:00:00:00:04:99"), icmp4Echo(src.ip4, b1.ip4, 64)))
		l.add(p+" from an off-subnet source", and(l2(p, src.mac, rmacA), icmp4Echo("10.4.9.9", b1.ip4, 64)))
	}
	l.add("b1 ping a1", and(l2(b1.port, b1.mac, rmacB), icmp4Echo(b1.ip4, a1.ip4, 64)), on("ls-rt-b"))
	l.add("b1 tcp reply to a2", and(l2(b1.port, b1.mac, rmacB), tcp4(b1.ip4, a2.ip4, 80, 30000)), on("ls-rt-b"))
	l.add("b1 ping its router", and(l2(b1.port, b1.mac, rmacB), icmp4Echo(b1.ip4, "10.4.2.1", 64)), on("ls-rt-b"))
	l.add("b1 to a1 TTL 2", and(l2(b1.port, b1.mac, rmacB), icmp4Echo(b1.ip4, a1.ip4, 2)), on("ls-rt-b"))
	l.add("b1 ARP for its router", and(l2(b1.port, b1.mac, bcastMAC), arpRequest(b1.mac, b1.ip4, "10.4.2.1")), on("ls-rt-b"))
	l.add("unknown port ping a1", and(l2("rt-unk", "00:00:00:00:04:50", rmacB), icmp4Echo("10.4.2.50", a1.ip4, 64)), on("ls-rt-b"))
	l.add("unknown port ARP reply for 10.4.2.60", and(l2("rt-unk", "00:00:00:00:04:60", rmacB), arpReply("00:00:00:00:04:60", "10.4.2.60", rmacB, "10.4.2.1")), on("ls-rt-b"))
	// Enter the router directly, as a packet from its port would.
	l.add("router: a1 to b1", and(l2("lrp-rt-a", a1.mac, rmacA), icmp4Echo(a1.ip4, b1.ip4, 64)), on("lr-rt"))
	l.add("router: b1 to an unresolved a-side IP", and(l2("lrp-rt-b", b1.mac, rmacB), icmp4Echo(b1.ip4, "10.4.1.77", 64)), on("lr-rt"))
	l.add("router: ARP for its a-side IP", and(l2("lrp-rt-a", a1.mac, bcastMAC), arpRequest(a1.mac, a1.ip4, "10.4.1.1")), on("lr-rt"))
	l.add("router: ARP reply", and(l2("lrp-rt-a", a1.mac, rmacA), arpReply(a1.mac, a1.ip4, rmacA, "10.4.1.1")), on("lr-rt"))
	l.add("router: to another router's MAC", and(l2("lrp-rt-a", a1.mac, "00:00:00:00:04:99"), icmp4Echo(a1.ip4, b1.ip4, 64)), on("lr-rt"))
	l.add("router: multicast IP", and(l2("lrp-rt-a", a1.mac, "01:00:5e:01:01:01"), udp4(a1.ip4, "239.1.1.1", 5000, 5000)), on("lr-rt"))
	l.add("router: from its own IP", and(l2("lrp-rt-a", a1.mac, rmacA), icmp4Echo("10.4.1.1", b1.ip4, 64)), on("lr-rt"))
	return topology{
		name: "router",
		build: func(e *ovntest.Env) {
			e.NBCtl("ls-add", "ls-rt-a")
			e.NBCtl("ls-add", "ls-rt-b")
			e.NBCtl("lr-add", "lr-rt")
			connect(e, "lr-rt", "lrp-rt-a", "ls-rt-a", rmacA, "10.4.1.1/24")
			connect(e, "lr-rt", "lrp-rt-b", "ls-rt-b", rmacB, "10.4.2.1/24")
			addHost(e, "ls-rt-a", a1)
			addHost(e, "ls-rt-a", a2)
			addHost(e, "ls-rt-b", b1)
			addLSP(e, "ls-rt-b", "rt-unk", "unknown", "")
			e.NBCtl("static-mac-binding-add", "lrp-rt-b", "10.4.2.51", "00:00:00:00:04:51")
			addSBMACBinding(e, "lr-rt", "lrp-rt-b", "10.4.2.50", "00:00:00:00:04:50")
		},
		cases: l.cases,
	}
}

// --- (e) a gateway router with SNAT and DNAT ---------------------------------

func gateway() topology {
	v1 := host{"gw-v1", "00:00:00:00:05:11", "10.5.0.11", ""}
	v2 := host{"gw-v2", "00:00:00:00:05:12", "10.5.0.12", ""}
	v3 := host{"gw-v3", "00:00:00:00:05:13", "10.5.0.13", ""}
	const intMAC, extMAC, upMAC = "00:00:00:00:05:01", "00:00:00:00:05:02", "00:00:00:00:05:fe"
	l := caseList{dp: "ls-gw"}
	ctSeqs := [][]string{nil, {"new"}, {"new", "new"}, {"new", "new", "new"}, {"est", "est", "est"}, {"est,rpl", "est,rpl,dnat"}, {"est,rpl,snat"}}
	for _, cs := range ctSeqs {
		s := strings.Join(cs, "/")
		if s == "" {
			s = "default ct"
		}
		for _, v := range []host{v1, v2, v3} {
			l.add(v.port+" tcp to the Internet "+s, and(l2(v.port, v.mac, intMAC), tcp4(v.ip4, "8.8.8.8", 50000, 443)), ct(cs...))
		}
		l.add("v1 udp to the external net "+s, and(l2(v1.port, v1.mac, intMAC), udp4(v1.ip4, "172.16.5.77", 50000, 53)), ct(cs...))
		l.add("external to v2's DNAT IP "+s, and(l2("gw-ln", upMAC, extMAC), tcp4("8.8.8.8", "172.16.5.112", 443, 22)), ct(cs...), on("ls-ext"))
		l.add("external ping to the router "+s, and(l2("gw-ln", upMAC, extMAC), icmp4Echo("8.8.8.8", "172.16.5.1", 64)), ct(cs...), on("ls-ext"))
	}
	// Replies to SNATed connections: the gateway router un-SNATs with
	// "ct_snat;", which ovn-trace 23.03 treats as having no visible effect
	// and ends the trace there.
	for _, cs := range [][]string{nil, {"est,rpl"}} {
		l.add("reply to v1's dnat_and_snat IP (un-SNAT ends ovn-trace) "+strings.Join(cs, "/"), and(l2("gw-ln", upMAC, extMAC), tcp4("8.8.8.8", "172.16.5.111", 443, 50000)), ct(cs...), on("ls-ext"))
		l.add("reply to the SNAT IP (un-SNAT ends ovn-trace) "+strings.Join(cs, "/"), and(l2("gw-ln", upMAC, extMAC), tcp4("8.8.8.8", "172.16.5.100", 443, 50000)), ct(cs...), on("ls-ext"))
	}
	for _, tpa := range []string{"172.16.5.1", "172.16.5.100", "172.16.5.111", "172.16.5.112", "172.16.5.200"} {
		l.add("upstream ARP for "+tpa, and(l2("gw-ln", upMAC, bcastMAC), arpRequest(upMAC, "172.16.5.254", tpa)), on("ls-ext"))
	}
	l.add("upstream ARP reply", and(l2("gw-ln", upMAC, extMAC), arpReply(upMAC, "172.16.5.254", extMAC, "172.16.5.1")), on("ls-ext"))
	l.add("external to an unknown external IP", and(l2("gw-ln", upMAC, extMAC), tcp4("8.8.8.8", "172.16.5.150", 443, 50000)), on("ls-ext"))
	l.add("external to an internal IP directly", and(l2("gw-ln", upMAC, extMAC), tcp4("8.8.8.8", v3.ip4, 443, 50000)), ct("new"), on("ls-ext"))
	l.add("external TTL 1 to the DNAT IP", and(l2("gw-ln", upMAC, extMAC), withTTL(tcp4("8.8.8.8", "172.16.5.112", 443, 22), 1)), ct("new"), on("ls-ext"))
	l.add("v1 ping the router", and(l2(v1.port, v1.mac, intMAC), icmp4Echo(v1.ip4, "10.5.0.1", 64)))
	l.add("v1 ping the router's external IP", and(l2(v1.port, v1.mac, intMAC), icmp4Echo(v1.ip4, "172.16.5.1", 64)))
	l.add("v1 ping the Internet with TTL 1", and(l2(v1.port, v1.mac, intMAC), icmp4Echo(v1.ip4, "8.8.8.8", 1)))
	l.add("v1 ping the Internet new", and(l2(v1.port, v1.mac, intMAC), icmp4Echo(v1.ip4, "8.8.8.8", 64)), ct("new", "new"))
	l.add("v1 to its own dnat_and_snat IP", and(l2(v1.port, v1.mac, intMAC), tcp4(v1.ip4, "172.16.5.111", 50000, 80)), ct("new", "new"))
	l.add("v3 to v2's DNAT IP (hairpin)", and(l2(v3.port, v3.mac, intMAC), tcp4(v3.ip4, "172.16.5.112", 50000, 22)), ct("new", "new"))
	l.add("v1 ARP for the router", and(l2(v1.port, v1.mac, bcastMAC), arpRequest(v1.mac, v1.ip4, "10.5.0.1")))
	l.add("v2 to v1 on the switch", and(l2(v2.port, v2.mac, v1.mac), tcp4(v2.ip4, v1.ip4, 1, 2)))
	l.add("router: from the external port", and(l2("lrp-gw-ext", upMAC, extMAC), tcp4("8.8.8.8", "172.16.5.112", 443, 22)), ct("new", "new"), on("lr-gw"))
	return topology{
		name: "gateway-router",
		build: func(e *ovntest.Env) {
			e.SBCtl("chassis-add", "gw-chassis", "geneve", "127.0.0.1")
			e.NBCtl("lr-add", "lr-gw", "--", "set", "logical_router", "lr-gw", "options:chassis=gw-chassis")
			e.NBCtl("ls-add", "ls-gw")
			e.NBCtl("ls-add", "ls-ext")
			connect(e, "lr-gw", "lrp-gw-int", "ls-gw", intMAC, "10.5.0.1/24")
			connect(e, "lr-gw", "lrp-gw-ext", "ls-ext", extMAC, "172.16.5.1/24")
			addLocalnet(e, "ls-ext", "gw-ln", "physnet")
			for _, h := range []host{v1, v2, v3} {
				addHost(e, "ls-gw", h)
			}
			e.NBCtl("lr-nat-add", "lr-gw", "snat", "172.16.5.100", "10.5.0.0/24")
			e.NBCtl("lr-nat-add", "lr-gw", "dnat_and_snat", "172.16.5.111", "10.5.0.11")
			e.NBCtl("lr-nat-add", "lr-gw", "dnat", "172.16.5.112", "10.5.0.12")
			e.NBCtl("lr-route-add", "lr-gw", "0.0.0.0/0", "172.16.5.254")
			addSBMACBinding(e, "lr-gw", "lrp-gw-ext", "172.16.5.254", upMAC)
		},
		cases: l.cases,
	}
}

// --- (f) unknown addresses and a localnet port -------------------------------

func unknownLocalnet() topology {
	vm := host{"un-vm", "00:00:00:00:06:11", "10.6.0.11", ""}
	vm2 := host{"un-vm2", "00:00:00:00:06:12", "10.6.0.12", ""}
	both := host{"un-both", "00:00:00:00:06:13", "10.6.0.13", ""} // known addresses and unknown
	unk := host{"un-unk", "00:00:00:00:06:77", "10.6.0.77", ""}   // unknown only
	ln := host{"un-ln", "00:00:00:00:06:aa", "10.6.0.200", ""}    // the physical network
	const strangerMAC = "00:00:00:00:06:99"
	l := caseList{dp: "ls-un"}
	for _, in := range []host{vm, vm2, unk, ln, both} {
		p := in.port
		for _, dst := range []struct{ mac, what string }{
			{vm.mac, "vm"}, {unk.mac, "unk's MAC"}, {both.mac, "both"}, {ln.mac, "a physical host"},
			{bcastMAC, "broadcast"}, {"01:00:5e:01:02:03", "multicast"}, {strangerMAC, "a stranger"},
		} {
			if dst.mac == in.mac {
				continue
			}
			if len(l.cases)%2 == 0 {
				l.add(p+" ping "+dst.what, and(l2(p, in.mac, dst.mac), icmp4Echo(in.ip4, "10.6.0.250", 64)))
			} else {
				l.add(p+" udp "+dst.what, and(l2(p, in.mac, dst.mac), udp4(in.ip4, "10.6.0.250", 5000, 5001)))
			}
		}
		l.add(p+" ARP for vm", and(l2(p, in.mac, bcastMAC), arpRequest(in.mac, in.ip4, vm.ip4)))
		l.add(p+" ARP for an unknown IP", and(l2(p, in.mac, bcastMAC), arpRequest(in.mac, in.ip4, "10.6.0.250")))
		l.add(p+" ARP reply to vm", and(l2(p, in.mac, vm.mac), arpReply(in.mac, in.ip4, vm.mac, vm.ip4)))
	}
	l.add("vm to a stranger on the tagged net", and(l2("un-ln100", "00:00:00:00:06:bb", strangerMAC), icmp4Echo("10.7.0.5", "10.7.0.6", 64)), on("ls-un100"))
	l.add("tagged net to vm100", and(l2("un-ln100", "00:00:00:00:06:bb", "00:00:00:00:06:21"), icmp4Echo("10.7.0.5", "10.7.0.21", 64)), on("ls-un100"))
	l.add("vm100 to the tagged net", and(l2("un-vm100", "00:00:00:00:06:21", "00:00:00:00:06:bb"), icmp4Echo("10.7.0.21", "10.7.0.5", 64)), on("ls-un100"))
	l.add("vm100 broadcast", and(l2("un-vm100", "00:00:00:00:06:21", bcastMAC), arpRequest("00:00:00:00:06:21", "10.7.0.21", "10.7.0.5")), on("ls-un100"))
	return topology{
		name: "unknown-localnet",
		build: func(e *ovntest.Env) {
			e.NBCtl("ls-add", "ls-un")
			addHost(e, "ls-un", vm)
			addHost(e, "ls-un", vm2)
			e.NBCtl("lsp-add", "ls-un", both.port, "--", "lsp-set-addresses", both.port, both.addrs(), "unknown")
			addLSP(e, "ls-un", unk.port, "unknown", "")
			addLocalnet(e, "ls-un", ln.port, "physnet")
			// A second switch on a VLAN of the same physical network.
			e.NBCtl("ls-add", "ls-un100")
			addLSP(e, "ls-un100", "un-vm100", "00:00:00:00:06:21 10.7.0.21", "")
			addLocalnet(e, "ls-un100", "un-ln100", "physnet")
			e.NBCtl("set", "logical_switch_port", "un-ln100", "tag=100")
		},
		cases: l.cases,
	}
}

// --- (g) IPv6 with neighbour discovery ---------------------------------------

func ipv6() topology {
	h1 := host{"v6-h1", "00:00:00:00:07:11", "", "fd07:1::11"}
	h2 := host{"v6-h2", "00:00:00:00:07:12", "", "fd07:1::12"}
	h3 := host{"v6-h3", "00:00:00:00:07:21", "", "fd07:2::21"}
	const rmacA, rmacB = "00:00:00:00:07:01", "00:00:00:00:07:02"
	rllA := linkLocal(rmacA)
	l := caseList{dp: "ls-v6a"}
	// ovn-trace 23.03 aborts (an assertion in its action accessors) on
	// nd_na_router, which answers an NS for a router address, and on
	// put_nd_ra_opts, which answers an RS. These are traced apart.
	crash := caseList{dp: "ls-v6a"}
	for _, src := range []host{h1, h2} {
		p := src.port
		ll := linkLocal(src.mac)
		peer := h2
		if src == h2 {
			peer = h1
		}
		l.add(p+" ping6 peer", and(l2(p, src.mac, peer.mac), icmp6Echo(src.ip6, peer.ip6, 64)))
		l.add(p+" tcp6 peer", and(l2(p, src.mac, peer.mac), tcp6(src.ip6, peer.ip6, 443)))
		l.add(p+" udp6 peer", and(l2(p, src.mac, peer.mac), udp6(src.ip6, peer.ip6, 1000, 53)))
		l.add(p+" NS for peer", and(l2(p, src.mac, solicitedMAC(peer.ip6)), ns(src.ip6, peer.ip6, src.mac)))
		l.add(p+" NS for peer from link-local", and(l2(p, src.mac, solicitedMAC(peer.ip6)), ns(ll, peer.ip6, src.mac)))
		l.add(p+" NS for an unknown address", and(l2(p, src.mac, solicitedMAC("fd07:1::99")), ns(src.ip6, "fd07:1::99", src.mac)))
		crash.add(p+" NS for the router", and(l2(p, src.mac, solicitedMAC("fd07:1::1")), ns(src.ip6, "fd07:1::1", src.mac)))
		crash.add(p+" NS for the router's link-local", and(l2(p, src.mac, solicitedMAC(rllA)), ns(ll, rllA, src.mac)))
		l.add(p+" NS for the far router address", and(l2(p, src.mac, solicitedMAC("fd07:2::1")), ns(src.ip6, "fd07:2::1", src.mac)))
		crash.add(p+" unicast NS for the router", and(l2(p, src.mac, rmacA), withDst(ns(src.ip6, "fd07:1::1", src.mac), "fd07:1::1")))
		l.add(p+" NA to the router", and(l2(p, src.mac, rmacA), na(src.ip6, "fd07:1::1", src.ip6, src.mac)))
		l.add(p+" unsolicited NA to all-nodes", and(l2(p, src.mac, "33:33:00:00:00:01"), na(src.ip6, "ff02::1", src.ip6, src.mac)))
		crash.add(p+" RS", and(l2(p, src.mac, "33:33:00:00:00:02"), rs(ll)))
		crash.add(p+" RS from ::", and(l2(p, src.mac, "33:33:00:00:00:02"), rs("::")))
		for _, dst := range []struct{ ip, what string }{
			{h3.ip6, "h3"}, {"fd07:2::99", "an unresolved neighbour"}, {"fd07:2::50", "a learned neighbour"},
			{"fd07:2::1", "the far router address"}, {"fd07:1::1", "the near router address"}, {"fd07:9::1", "an unrouted network"},
		} {
			l.add(p+" ping6 "+dst.what, and(l2(p, src.mac, rmacA), icmp6Echo(src.ip6, dst.ip, 64)))
			l.add(p+" tcp6 "+dst.what, and(l2(p, src.mac, rmacA), tcp6(src.ip6, dst.ip, 80)))
			l.add(p+" udp6 "+dst.what, and(l2(p, src.mac, rmacA), udp6(src.ip6, dst.ip, 1000, 53)))
		}
		l.add(p+" ping6 the router's link-local", and(l2(p, src.mac, rmacA), icmp6Echo(ll, rllA, 64)))
		l.add(p+" ping6 h3 with hop limit 1", and(l2(p, src.mac, rmacA), icmp6Echo(src.ip6, h3.ip6, 1)))
		l.add(p+" ping6 all-nodes", and(l2(p, src.mac, "33:33:00:00:00:01"), icmp6Echo(ll, "ff02::1", 1)))
		l.add(p+" MLDv2 report", and(l2(p, src.mac, "33:33:00:00:00:16"), fmt.Sprintf("ip6.src == %s && ip6.dst == ff02::16 && ip.ttl == 1 && icmp6.type == 143 && icmp6.code == 0", ll)))
	}
	l.add("h3 ping6 h1", and(l2(h3.port, h3.mac, rmacB), icmp6Echo(h3.ip6, h1.ip6, 64)), on("ls-v6b"))
	l.add("h3 tcp6 to h2", and(l2(h3.port, h3.mac, rmacB), tcp6(h3.ip6, h2.ip6, 22)), on("ls-v6b"))
	l.add("h3 NA to the router", and(l2(h3.port, h3.mac, rmacB), na(h3.ip6, "fd07:2::1", h3.ip6, h3.mac)), on("ls-v6b"))
	crash.add("h3 RS (dhcpv6_stateful)", and(l2(h3.port, h3.mac, "33:33:00:00:00:02"), rs(linkLocal(h3.mac))), on("ls-v6b"))
	crash.add("h3 NS for its router", and(l2(h3.port, h3.mac, solicitedMAC("fd07:2::1")), ns(h3.ip6, "fd07:2::1", h3.mac)), on("ls-v6b"))
	l.add("router: NA from an unknown neighbour", and(l2("lrp-v6b", "00:00:00:00:07:99", rmacB), na("fd07:2::99", "fd07:2::1", "fd07:2::99", "00:00:00:00:07:99")), on("lr-v6"))
	l.add("router: ping6 from h3", and(l2("lrp-v6b", h3.mac, rmacB), icmp6Echo(h3.ip6, h1.ip6, 64)), on("lr-v6"))
	return topology{
		name: "ipv6-nd",
		build: func(e *ovntest.Env) {
			e.NBCtl("ls-add", "ls-v6a")
			e.NBCtl("ls-add", "ls-v6b")
			e.NBCtl("lr-add", "lr-v6")
			connect(e, "lr-v6", "lrp-v6a", "ls-v6a", rmacA, "fd07:1::1/64")
			connect(e, "lr-v6", "lrp-v6b", "ls-v6b", rmacB, "fd07:2::1/64")
			e.NBCtl("set", "logical_router_port", "lrp-v6a", "ipv6_ra_configs:address_mode=slaac",
				"ipv6_ra_configs:send_periodic=false", "ipv6_ra_configs:mtu=1400", "ipv6_ra_configs:rdnss=fd07:1::53")
			e.NBCtl("set", "logical_router_port", "lrp-v6b", "ipv6_ra_configs:address_mode=dhcpv6_stateful")
			addHost(e, "ls-v6a", h1)
			addHost(e, "ls-v6a", h2)
			addHost(e, "ls-v6b", h3)
			addSBMACBinding(e, "lr-v6", "lrp-v6b", "fd07:2::50", "00:00:00:00:07:50")
		},
		cases:          l.cases,
		ovnTraceAborts: crash.cases,
	}
}

// --- (h) DHCP options ----------------------------------------------------------

func dhcp() topology {
	d1 := host{"dh-d1", "00:00:00:00:08:11", "10.8.0.11", ""}         // DHCPv4
	d2 := host{"dh-d2", "00:00:00:00:08:12", "", "fd08::12"}          // DHCPv6
	d3 := host{"dh-d3", "00:00:00:00:08:13", "10.8.0.13", "fd08::13"} // both
	d4 := host{"dh-d4", "00:00:00:00:08:14", "10.8.0.14", ""}         // no DHCP options
	d5 := host{"dh-d5", "00:00:00:00:08:15", "", "fd08::15"}          // stateless DHCPv6
	const serverMAC = "c0:ff:ee:00:08:01"
	l := caseList{dp: "ls-dh"}
	for _, h := range []host{d1, d2, d3, d4, d5} {
		p := h.port
		ll := linkLocal(h.mac)
		l.add(p+" DHCPDISCOVER (or DHCPREQUEST, selecting)", and(l2(p, h.mac, bcastMAC), dhcpDiscover()))
		if h.ip4 != "" {
			l.add(p+" DHCPREQUEST (renewing, unicast)", and(l2(p, h.mac, serverMAC), udp4(h.ip4, "10.8.0.1", 68, 67)))
			l.add(p+" DHCPREQUEST (rebinding, broadcast)", and(l2(p, h.mac, bcastMAC), udp4(h.ip4, "255.255.255.255", 68, 67)))
		}
		l.add(p+" DHCP to the client port", and(l2(p, h.mac, bcastMAC), "ip4.src == 0.0.0.0 && ip4.dst == 255.255.255.255 && ip.ttl == 64 && udp.src == 68 && udp.dst == 68"))
		l.add(p+" DHCP from a foreign IPv4", and(l2(p, h.mac, serverMAC), udp4("10.8.0.200", "10.8.0.1", 68, 67)))
		l.add(p+" DHCPv6 SOLICIT", and(l2(p, h.mac, "33:33:00:01:00:02"), udp6(ll, "ff02::1:2", 546, 547)))
		l.add(p+" DHCPv6 to the wrong port", and(l2(p, h.mac, "33:33:00:01:00:02"), udp6(ll, "ff02::1:2", 546, 548)))
		l.add(p+" DHCPv6 from a global address", and(l2(p, h.mac, "33:33:00:01:00:02"), udp6("fd08::99", "ff02::1:2", 546, 547)))
		l.add(p+" DNS query for a known name", and(l2(p, h.mac, serverMAC), udp4(orIP(h.ip4, "10.8.0.99"), "10.8.0.1", 40000, 53)))
		l.add(p+" DNS query over IPv6", and(l2(p, h.mac, serverMAC), udp6(ll, "fd08::1", 40000, 53)))
		l.add(p+" ARP for the DHCP server", and(l2(p, h.mac, bcastMAC), arpRequest(h.mac, "10.8.0.99", "10.8.0.1")))
		for _, dst := range []host{d1, d3, d4} {
			if dst != h && h.ip4 != "" {
				l.add(p+" udp to "+dst.port, and(l2(p, h.mac, dst.mac), udp4(h.ip4, dst.ip4, 5000, 53)))
			}
		}
	}
	return topology{
		name: "dhcp",
		build: func(e *ovntest.Env) {
			e.NBCtl("ls-add", "ls-dh")
			for _, h := range []host{d1, d2, d3, d4, d5} {
				addHost(e, "ls-dh", h)
			}
			v4 := strings.TrimSpace(e.NBCtl("create", "DHCP_Options", "cidr=10.8.0.0/24",
				`options="lease_time"="3600" "router"="10.8.0.1" "server_id"="10.8.0.1" "server_mac"="`+serverMAC+`" "dns_server"="{8.8.8.8, 1.1.1.1}" "domain_name"="\"example.org\"" "mtu"="1400" "hostname"="\"vm\""`))
			v6 := strings.TrimSpace(e.NBCtl("create", "DHCP_Options", `cidr="fd08::/64"`,
				`options="server_id"="00:00:00:00:08:02" "dns_server"="fd08::53" "domain_search"="\"example.org\""`))
			v6stateless := strings.TrimSpace(e.NBCtl("create", "DHCP_Options", `cidr="fd08::/64"`,
				`options="server_id"="00:00:00:00:08:02" "dhcpv6_stateless"="true" "dns_server"="fd08::53"`))
			e.NBCtl("lsp-set-dhcpv4-options", d1.port, v4)
			e.NBCtl("lsp-set-dhcpv4-options", d3.port, v4)
			e.NBCtl("lsp-set-dhcpv6-options", d2.port, v6)
			e.NBCtl("lsp-set-dhcpv6-options", d3.port, v6)
			e.NBCtl("lsp-set-dhcpv6-options", d5.port, v6stateless)
			dns := strings.TrimSpace(e.NBCtl("create", "DNS", `records={"vm1.example.org"="10.8.0.11 fd08::12"}`))
			e.NBCtl("add", "logical_switch", "ls-dh", "dns_records", dns)
		},
		cases: l.cases,
	}
}

// --- more: two routers joined by a transit switch ----------------------------

func routerChain() topology {
	a := host{"rc-a", "00:00:00:00:09:11", "10.9.1.11", ""}
	b := host{"rc-b", "00:00:00:00:09:21", "10.9.2.11", ""}
	const macA, macJA, macJB, macB = "00:00:00:00:09:01", "00:00:00:00:09:a1", "00:00:00:00:09:b1", "00:00:00:00:09:02"
	l := caseList{dp: "ls-rc-a"}
	for _, dst := range []struct{ ip, what string }{
		{b.ip4, "b"}, {"10.9.2.77", "an unresolved b-side IP"}, {"10.9.2.1", "lr-b's b-side IP"},
		{"100.64.0.2", "lr-b's join IP"}, {"100.64.0.1", "lr-a's join IP"}, {"10.9.3.5", "the static route's network"},
		{"10.9.2.200", "the policy-dropped IP"}, {"10.9.2.201", "the rerouted IP"}, {"203.0.113.9", "the default route"},
	} {
		l.add("a ping "+dst.what, and(l2(a.port, a.mac, macA), icmp4Echo(a.ip4, dst.ip, 64)))
		l.add("a tcp "+dst.what, and(l2(a.port, a.mac, macA), tcp4(a.ip4, dst.ip, 30000, 80)))
		l.add("a udp "+dst.what, and(l2(a.port, a.mac, macA), udp4(a.ip4, dst.ip, 30000, 53)))
		l.add("a ping "+dst.what+" TTL 2", and(l2(a.port, a.mac, macA), icmp4Echo(a.ip4, dst.ip, 2)))
	}
	l.add("a ping b TTL 1", and(l2(a.port, a.mac, macA), icmp4Echo(a.ip4, b.ip4, 1)))
	l.add("a ARP for its router", and(l2(a.port, a.mac, bcastMAC), arpRequest(a.mac, a.ip4, "10.9.1.1")))
	l.add("a from a source the policy allows", and(l2(a.port, a.mac, macA), icmp4Echo("10.9.1.12", "10.9.2.200", 64)))
	for _, dst := range []string{a.ip4, "10.9.1.99", "10.9.1.1", "100.64.0.1", "203.0.113.9"} {
		l.add("b ping "+dst, and(l2(b.port, b.mac, macB), icmp4Echo(b.ip4, dst, 64)), on("ls-rc-b"))
		l.add("b tcp "+dst, and(l2(b.port, b.mac, macB), tcp4(b.ip4, dst, 80, 30000)), on("ls-rc-b"))
	}
	l.add("b ARP for its router", and(l2(b.port, b.mac, bcastMAC), arpRequest(b.mac, b.ip4, "10.9.2.1")), on("ls-rc-b"))
	l.add("join: lr-a to lr-b", and(l2("ls-rc-join-lrp-rc-ja", macJA, macJB), icmp4Echo(a.ip4, b.ip4, 63)), on("ls-rc-join"))
	l.add("join: ARP from lr-a for lr-b", and(l2("ls-rc-join-lrp-rc-ja", macJA, bcastMAC), arpRequest(macJA, "100.64.0.1", "100.64.0.2")), on("ls-rc-join"))
	l.add("join: to a stranger", and(l2("ls-rc-join-lrp-rc-ja", macJA, "00:00:00:00:09:99"), icmp4Echo(a.ip4, b.ip4, 63)), on("ls-rc-join"))
	l.add("lr-b: from the join port", and(l2("lrp-rc-jb", macJA, macJB), icmp4Echo(a.ip4, b.ip4, 63)), on("lr-rc-b"))
	l.add("lr-b: to lr-b's join IP", and(l2("lrp-rc-jb", macJA, macJB), icmp4Echo(a.ip4, "100.64.0.2", 63)), on("lr-rc-b"))
	return topology{
		name: "router-chain",
		build: func(e *ovntest.Env) {
			for _, ls := range []string{"ls-rc-a", "ls-rc-b", "ls-rc-join"} {
				e.NBCtl("ls-add", ls)
			}
			e.NBCtl("lr-add", "lr-rc-a")
			e.NBCtl("lr-add", "lr-rc-b")
			connect(e, "lr-rc-a", "lrp-rc-a", "ls-rc-a", macA, "10.9.1.1/24")
			connect(e, "lr-rc-a", "lrp-rc-ja", "ls-rc-join", macJA, "100.64.0.1/16")
			connect(e, "lr-rc-b", "lrp-rc-jb", "ls-rc-join", macJB, "100.64.0.2/16")
			connect(e, "lr-rc-b", "lrp-rc-b", "ls-rc-b", macB, "10.9.2.1/24")
			addHost(e, "ls-rc-a", a)
			addHost(e, "ls-rc-b", b)
			e.NBCtl("lr-route-add", "lr-rc-a", "10.9.2.0/24", "100.64.0.2")
			e.NBCtl("lr-route-add", "lr-rc-a", "10.9.3.0/24", "100.64.0.2")
			e.NBCtl("lr-route-add", "lr-rc-a", "0.0.0.0/0", "100.64.0.99")
			e.NBCtl("lr-route-add", "lr-rc-b", "10.9.1.0/24", "100.64.0.1")
			e.NBCtl("lr-route-add", "lr-rc-b", "10.9.3.0/24", "10.9.2.254")
			e.NBCtl("--policy=src-ip", "lr-route-add", "lr-rc-b", "10.9.2.0/24", "100.64.0.1")
			e.NBCtl("lr-policy-add", "lr-rc-a", "1000", "ip4.src == 10.9.1.11 && ip4.dst == 10.9.2.200", "drop")
			e.NBCtl("lr-policy-add", "lr-rc-a", "900", "ip4.dst == 10.9.2.201", "reroute", "100.64.0.2")
			e.NBCtl("lr-policy-add", "lr-rc-a", "800", "ip4.dst == 10.9.2.0/24", "allow")
			e.NBCtl("static-mac-binding-add", "lrp-rc-b", "10.9.2.254", "00:00:00:00:09:fe")
		},
		cases: l.cases,
	}
}

// --- more: a load balancer on a gateway router, and reject ------------------

func routerLB() topology {
	s1 := host{"rl-s1", "00:00:00:00:0a:11", "10.10.0.11", ""}
	s2 := host{"rl-s2", "00:00:00:00:0a:12", "10.10.0.12", ""}
	const intMAC, extMAC, upMAC = "00:00:00:00:0a:01", "00:00:00:00:0a:02", "00:00:00:00:0a:fe"
	l := caseList{dp: "ls-rl-ext"}
	ext := func(f string) string { return and(l2("rl-ln", upMAC, extMAC), f) }
	for _, s := range []host{s1, s2} {
		l.add("tcp VIP new → "+s.port, ext(tcp4("198.51.100.9", "172.16.10.100", 45000, 80)), lb(s.ip4+":8080"), ct("new", "new"))
		l.add("tcp VIP est → "+s.port, ext(tcp4("198.51.100.9", "172.16.10.100", 45000, 80)), lb(s.ip4+":8080"), ct("est", "est"))
		l.add("tcp VIP new/est → "+s.port, ext(tcp4("198.51.100.9", "172.16.10.100", 45000, 80)), lb(s.ip4+":8080"), ct("new", "est"))
		l.add("udp VIP new → "+s.port, ext(udp4("198.51.100.9", "172.16.10.101", 45000, 53)), lb(s.ip4+":5353"), ct("new", "new"))
		l.add("udp VIP est,rpl → "+s.port, ext(udp4("198.51.100.9", "172.16.10.101", 45000, 53)), lb(s.ip4+":5353"), ct("est,rpl", "est,rpl"))
		l.add(s.port+" reply from the backend est,rpl", and(l2(s.port, s.mac, intMAC), tcp4(s.ip4, "198.51.100.9", 8080, 45000)), ct("est,rpl", "est,rpl,dnat"), on("ls-rl-int"))
		l.add(s.port+" reply from the backend est,rpl,dnat", and(l2(s.port, s.mac, intMAC), tcp4(s.ip4, "198.51.100.9", 8080, 45000)), ct("est,rpl,dnat", "est,rpl,dnat"), on("ls-rl-int"))
		l.add(s.port+" to the VIP from inside (force SNAT) → s1", and(l2(s.port, s.mac, intMAC), tcp4(s.ip4, "172.16.10.100", 46000, 80)), lb(s1.ip4+":8080"), ct("new", "new", "new"), on("ls-rl-int"))
		l.add(s.port+" new connection out", and(l2(s.port, s.mac, intMAC), tcp4(s.ip4, "198.51.100.9", 46000, 443)), ct("new", "new"), on("ls-rl-int"))
		l.add(s.port+" ping the Internet", and(l2(s.port, s.mac, intMAC), icmp4Echo(s.ip4, "198.51.100.9", 64)), ct("new", "new"), on("ls-rl-int"))
		l.add("udp VIP new/est → "+s.port, ext(udp4("198.51.100.9", "172.16.10.101", 45000, 53)), lb(s.ip4+":5353"), ct("new", "est"))
		for _, cs := range [][]string{{"new", "new"}, {"est", "est"}} {
			l.add("external to "+s.port+" directly "+strings.Join(cs, "/"), ext(tcp4("198.51.100.9", s.ip4, 45000, 8080)), ct(cs...))
		}
	}
	for _, cs := range [][]string{{"new"}, {"new", "new"}, {"est"}} {
		s := strings.Join(cs, "/")
		l.add("tcp VIP without backends (reject) "+s, ext(tcp4("198.51.100.9", "172.16.10.102", 45000, 80)), ct(cs...))
		l.add("udp VIP without backends (reject) "+s, ext(udp4("198.51.100.9", "172.16.10.102", 45000, 80)), ct(cs...))
		l.add("tcp VIP on a port not balanced "+s, ext(tcp4("198.51.100.9", "172.16.10.100", 45000, 81)), ct(cs...))
		l.add("ping the VIP "+s, ext(icmp4Echo("198.51.100.9", "172.16.10.100", 64)), ct(cs...))
		l.add("ping the router "+s, ext(icmp4Echo("198.51.100.9", "172.16.10.1", 64)), ct(cs...))
	}
	// lb_force_snat_ip=router_ip makes the router un-SNAT its own IP with
	// "ct_snat;", where ovn-trace 23.03 ends the trace.
	l.add("tcp to the router's port 22 (un-SNAT ends ovn-trace)", ext(tcp4("198.51.100.9", "172.16.10.1", 45000, 22)), ct("new"))
	l.add("udp to the router (un-SNAT ends ovn-trace)", ext(udp4("198.51.100.9", "172.16.10.1", 45000, 161)), ct("new"))
	for _, tpa := range []string{"172.16.10.1", "172.16.10.100", "172.16.10.101", "172.16.10.102", "172.16.10.150"} {
		l.add("ARP for "+tpa, and(l2("rl-ln", upMAC, bcastMAC), arpRequest(upMAC, "172.16.10.254", tpa)))
	}
	l.add("router-IP VIP:443 (un-SNAT ends ovn-trace)", ext(tcp4("198.51.100.9", "172.16.10.1", 45000, 443)), lb(s1.ip4+":443"), ct("new", "new"))
	l.add("s1 ARP for its router", and(l2(s1.port, s1.mac, bcastMAC), arpRequest(s1.mac, s1.ip4, "10.10.0.1")), on("ls-rl-int"))
	l.add("s1 ping the router", and(l2(s1.port, s1.mac, intMAC), icmp4Echo(s1.ip4, "10.10.0.1", 64)), on("ls-rl-int"))
	l.add("s2 to s1", and(l2(s2.port, s2.mac, s1.mac), tcp4(s2.ip4, s1.ip4, 46000, 8080)), on("ls-rl-int"))
	return topology{
		name: "router-lb",
		build: func(e *ovntest.Env) {
			e.SBCtl("chassis-add", "rl-chassis", "geneve", "127.0.0.1")
			e.NBCtl("lr-add", "lr-rl", "--", "set", "logical_router", "lr-rl", "options:chassis=rl-chassis",
				"options:lb_force_snat_ip=router_ip")
			e.NBCtl("ls-add", "ls-rl-int")
			e.NBCtl("ls-add", "ls-rl-ext")
			connect(e, "lr-rl", "lrp-rl-int", "ls-rl-int", intMAC, "10.10.0.1/24")
			connect(e, "lr-rl", "lrp-rl-ext", "ls-rl-ext", extMAC, "172.16.10.1/24")
			addLocalnet(e, "ls-rl-ext", "rl-ln", "physnet")
			addHost(e, "ls-rl-int", s1)
			addHost(e, "ls-rl-int", s2)
			e.NBCtl("lb-add", "rl-web", "172.16.10.100:80", "10.10.0.11:8080,10.10.0.12:8080", "tcp")
			e.NBCtl("lb-add", "rl-dns", "172.16.10.101:53", "10.10.0.11:5353,10.10.0.12:5353", "udp")
			e.NBCtl("lb-add", "rl-https", "172.16.10.1:443", "10.10.0.11:443,10.10.0.12:443", "tcp")
			e.NBCtl("create", "Load_Balancer", "name=rl-empty", "protocol=tcp", `vips={"172.16.10.102:80"=""}`, "options:reject=true")
			e.NBCtl("create", "Load_Balancer", "name=rl-empty-udp", "protocol=udp", `vips={"172.16.10.102:80"=""}`, "options:reject=true")
			for _, lb := range []string{"rl-web", "rl-dns", "rl-https", "rl-empty", "rl-empty-udp"} {
				e.NBCtl("lr-lb-add", "lr-rl", lb)
			}
			e.NBCtl("lr-route-add", "lr-rl", "0.0.0.0/0", "172.16.10.254")
			addSBMACBinding(e, "lr-rl", "lrp-rl-ext", "172.16.10.254", upMAC)
		},
		cases: l.cases,
	}
}

// --- more: IGMP snooping and multicast relay --------------------------------

func multicast() topology {
	r1 := host{"mc-r1", "00:00:00:00:0b:11", "10.11.1.11", ""} // a receiver
	r2 := host{"mc-r2", "00:00:00:00:0b:12", "10.11.1.12", ""}
	s1 := host{"mc-s1", "00:00:00:00:0b:21", "10.11.2.11", ""} // a sender on the other switch
	// r3 shares 239.3.3.3 with s1 across the router: a packet to it
	// leaves unchanged to r3 and rewritten through the router.
	r3 := host{"mc-r3", "00:00:00:00:0b:13", "10.11.1.13", ""}
	const rmacA, rmacB = "00:00:00:00:0b:01", "00:00:00:00:0b:02"
	l := caseList{dp: "ls-mc-a"}
	igmp := func(src, dst string) string {
		return fmt.Sprintf("ip4.src == %s && ip4.dst == %s && ip.ttl == 1 && ip.proto == 2", src, dst)
	}
	for _, h := range []host{r1, r2} {
		p := h.port
		l.add(p+" IGMPv3 report", and(l2(p, h.mac, "01:00:5e:00:00:16"), igmp(h.ip4, "224.0.0.22")))
		l.add(p+" IGMPv2 report for 239.1.1.1", and(l2(p, h.mac, "01:00:5e:01:01:01"), igmp(h.ip4, "239.1.1.1")))
		for _, g := range []struct{ ip, mac string }{{"239.1.1.1", "01:00:5e:01:01:01"}, {"239.2.2.2", "01:00:5e:02:02:02"}, {"239.3.3.3", "01:00:5e:03:03:03"}, {"224.0.0.251", "01:00:5e:00:00:fb"}} {
			l.add(p+" udp to group "+g.ip, and(l2(p, h.mac, g.mac), udp4(h.ip4, g.ip, 5000, 5000)))
			l.add(p+" udp to group "+g.ip+" TTL 1", and(l2(p, h.mac, g.mac), withTTL(udp4(h.ip4, g.ip, 5000, 5000), 1)))
		}
		other := r1
		if h == r1 {
			other = r2
		}
		l.add(p+" unicast to the other receiver", and(l2(p, h.mac, other.mac), udp4(h.ip4, other.ip4, 5000, 5000)))
		l.add(p+" to the sender across the router", and(l2(p, h.mac, rmacA), udp4(h.ip4, s1.ip4, 5000, 5000)))
		l.add(p+" MLD report", and(l2(p, h.mac, "33:33:00:00:00:16"), fmt.Sprintf("ip6.src == %s && ip6.dst == ff02::16 && ip.ttl == 1 && icmp6.type == 143 && icmp6.code == 0", linkLocal(h.mac))))
		l.add(p+" IPv6 multicast data", and(l2(p, h.mac, "33:33:00:00:01:01"), udp6(linkLocal(h.mac), "ff0e::101", 5000, 5000)))
	}
	l.add("r1 IGMP leave", and(l2(r1.port, r1.mac, "01:00:5e:00:00:02"), igmp(r1.ip4, "224.0.0.2")))
	l.add("r2 IGMP query", and(l2(r2.port, r2.mac, "01:00:5e:00:00:01"), igmp(r2.ip4, "224.0.0.1")))
	for _, g := range []struct{ ip, mac string }{{"239.1.1.1", "01:00:5e:01:01:01"}, {"239.2.2.2", "01:00:5e:02:02:02"}, {"239.3.3.3", "01:00:5e:03:03:03"}, {"224.0.0.251", "01:00:5e:00:00:fb"}, {"239.255.255.250", "01:00:5e:7f:ff:fa"}} {
		l.add("s1 to group "+g.ip, and(l2(s1.port, s1.mac, g.mac), udp4(s1.ip4, g.ip, 6000, 6000)), on("ls-mc-b"))
		l.add("s1 to group "+g.ip+" TTL 1", and(l2(s1.port, s1.mac, g.mac), withTTL(udp4(s1.ip4, g.ip, 6000, 6000), 1)), on("ls-mc-b"))
		l.add("router: from b to group "+g.ip, and(l2("lrp-mc-b", s1.mac, g.mac), udp4(s1.ip4, g.ip, 6000, 6000)), on("lr-mc"))
		l.add("router: from a to group "+g.ip, and(l2("lrp-mc-a", r2.mac, g.mac), udp4(r2.ip4, g.ip, 6000, 6000)), on("lr-mc"))
	}
	l.add("s1 IGMP report", and(l2(s1.port, s1.mac, "01:00:5e:00:00:16"), igmp(s1.ip4, "224.0.0.22")), on("ls-mc-b"))
	l.add("s1 unicast to r1", and(l2(s1.port, s1.mac, rmacB), udp4(s1.ip4, r1.ip4, 6000, 6000)), on("ls-mc-b"))
	return topology{
		name: "multicast",
		build: func(e *ovntest.Env) {
			e.NBCtl("ls-add", "ls-mc-a")
			e.NBCtl("ls-add", "ls-mc-b")
			e.NBCtl("set", "logical_switch", "ls-mc-a", "other_config:mcast_snoop=true",
				"other_config:mcast_querier=true", "other_config:mcast_eth_src=00:00:00:00:0b:fe", "other_config:mcast_ip4_src=10.11.1.254")
			e.NBCtl("set", "logical_switch", "ls-mc-b", "other_config:mcast_snoop=true", "other_config:mcast_flood_unregistered=true")
			e.NBCtl("lr-add", "lr-mc")
			e.NBCtl("set", "logical_router", "lr-mc", "options:mcast_relay=true")
			connect(e, "lr-mc", "lrp-mc-a", "ls-mc-a", rmacA, "10.11.1.1/24")
			connect(e, "lr-mc", "lrp-mc-b", "ls-mc-b", rmacB, "10.11.2.1/24")
			addHost(e, "ls-mc-a", r1)
			addHost(e, "ls-mc-a", r2)
			addHost(e, "ls-mc-a", r3)
			addHost(e, "ls-mc-b", s1)
			e.NBCtl("set", "logical_switch_port", r2.port, "options:mcast_flood=true")
			// Groups ovn-controller would have learned from IGMP reports:
			// r1 joined 239.1.1.1, r3 and s1 joined 239.3.3.3.
			e.SBCtl("chassis-add", "mc-chassis", "geneve", "127.0.0.1")
			addIGMPGroup(e, "ls-mc-a", "mc-chassis", "239.1.1.1", r1.port)
			addIGMPGroup(e, "ls-mc-a", "mc-chassis", "239.3.3.3", r3.port)
			addIGMPGroup(e, "ls-mc-b", "mc-chassis", "239.3.3.3", s1.port)
		},
		cases: l.cases,
	}
}

// addIGMPGroup writes a multicast group a chassis learned by IGMP
// snooping on switch dpName, as ovn-controller does.
func addIGMPGroup(e *ovntest.Env, dpName, chassis, group string, ports ...string) {
	e.Sync()
	dp := strings.TrimSpace(e.SBCtl("--bare", "--columns=_uuid", "find", "Datapath_Binding", "external_ids:name="+dpName))
	ch := strings.TrimSpace(e.SBCtl("--bare", "--columns=_uuid", "find", "Chassis", "name="+chassis))
	var pbs []string
	for _, p := range ports {
		pbs = append(pbs, strings.TrimSpace(e.SBCtl("--bare", "--columns=_uuid", "find", "Port_Binding", "logical_port="+p)))
	}
	e.SBCtl("create", "IGMP_Group", fmt.Sprintf("address=%q", group), "datapath="+dp, "chassis="+ch,
		"ports=["+strings.Join(pbs, ",")+"]")
}

// orIP returns ip, or def when ip is empty.
func orIP(ip, def string) string {
	if ip == "" {
		return def
	}
	return ip
}
