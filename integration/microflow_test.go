package integration

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"
)

// Helpers that write microflows: the OVN match-language description of one
// packet that ovn-trace and ovsbpfctl trace take.

// host is a VM's logical port and addresses.
type host struct {
	port, mac, ip4, ip6 string
}

// caseOpt modifies one trace case: its datapath, --ct, --lb-dst.
type caseOpt func(*traceCase)

// ct gives the states the successive ct actions return (--ct, repeated).
func ct(states ...string) caseOpt { return func(c *traceCase) { c.ct = states } }

// lb picks the load balancer backend (--lb-dst IP[:PORT]).
func lb(dst string) caseOpt { return func(c *traceCase) { c.lbDst = dst } }

// on traces the packet from datapath dp instead of the list's default.
func on(dp string) caseOpt { return func(c *traceCase) { c.dp = dp } }

// caseList collects a topology's cases; dp is the default datapath.
type caseList struct {
	dp    string
	cases []traceCase
}

func (l *caseList) add(label, flow string, opts ...caseOpt) {
	c := traceCase{label: label, dp: l.dp, flow: flow}
	for _, o := range opts {
		o(&c)
	}
	l.cases = append(l.cases, c)
}

func l2(inport, src, dst string) string {
	return fmt.Sprintf(`inport == "%s" && eth.src == %s && eth.dst == %s`, inport, src, dst)
}

func and(parts ...string) string { return strings.Join(parts, " && ") }

func icmp4Echo(src, dst string, ttl int) string {
	return fmt.Sprintf("ip4.src == %s && ip4.dst == %s && ip.ttl == %d && icmp4.type == 8 && icmp4.code == 0", src, dst, ttl)
}

func tcp4(src, dst string, sport, dport int) string {
	return fmt.Sprintf("ip4.src == %s && ip4.dst == %s && ip.ttl == 64 && tcp.src == %d && tcp.dst == %d", src, dst, sport, dport)
}

func tcp4Flags(src, dst string, sport, dport, flags int) string {
	return fmt.Sprintf("%s && tcp.flags == %d", tcp4(src, dst, sport, dport), flags)
}

func udp4(src, dst string, sport, dport int) string {
	return fmt.Sprintf("ip4.src == %s && ip4.dst == %s && ip.ttl == 64 && udp.src == %d && udp.dst == %d", src, dst, sport, dport)
}

func sctp4(src, dst string, dport int) string {
	return fmt.Sprintf("ip4.src == %s && ip4.dst == %s && ip.ttl == 64 && sctp.src == 5000 && sctp.dst == %d", src, dst, dport)
}

func arpRequest(sha, spa, tpa string) string {
	return fmt.Sprintf("arp.op == 1 && arp.sha == %s && arp.spa == %s && arp.tha == 00:00:00:00:00:00 && arp.tpa == %s", sha, spa, tpa)
}

func arpReply(sha, spa, tha, tpa string) string {
	return fmt.Sprintf("arp.op == 2 && arp.sha == %s && arp.spa == %s && arp.tha == %s && arp.tpa == %s", sha, spa, tha, tpa)
}

func icmp6Echo(src, dst string, hops int) string {
	return fmt.Sprintf("ip6.src == %s && ip6.dst == %s && ip.ttl == %d && icmp6.type == 128 && icmp6.code == 0", src, dst, hops)
}

func tcp6(src, dst string, dport int) string {
	return fmt.Sprintf("ip6.src == %s && ip6.dst == %s && ip.ttl == 64 && tcp.src == 40000 && tcp.dst == %d", src, dst, dport)
}

func udp6(src, dst string, sport, dport int) string {
	return fmt.Sprintf("ip6.src == %s && ip6.dst == %s && ip.ttl == 64 && udp.src == %d && udp.dst == %d", src, dst, sport, dport)
}

// ns is a neighbour solicitation for target from src (with a source
// link-layer option sll) to the target's solicited-node address.
func ns(src, target, sll string) string {
	return fmt.Sprintf("ip6.src == %s && ip6.dst == %s && ip.ttl == 255 && icmp6.type == 135 && icmp6.code == 0 && nd.target == %s && nd.sll == %s",
		src, solicitedNode(target), target, sll)
}

// na is a neighbour advertisement for target with target link-layer tll.
func na(src, dst, target, tll string) string {
	return fmt.Sprintf("ip6.src == %s && ip6.dst == %s && ip.ttl == 255 && icmp6.type == 136 && icmp6.code == 0 && nd.target == %s && nd.tll == %s",
		src, dst, target, tll)
}

// rs is a router solicitation to all-routers.
func rs(src string) string {
	return fmt.Sprintf("ip6.src == %s && ip6.dst == ff02::2 && ip.ttl == 255 && icmp6.type == 133 && icmp6.code == 0", src)
}

// solicitedNode returns the solicited-node multicast address of addr.
func solicitedNode(addr string) string {
	a := netip.MustParseAddr(addr).As16()
	sn := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: a[13], 14: a[14], 15: a[15]}
	return netip.AddrFrom16(sn).String()
}

// solicitedMAC returns the Ethernet multicast address of addr's
// solicited-node group.
func solicitedMAC(addr string) string {
	a := netip.MustParseAddr(addr).As16()
	return fmt.Sprintf("33:33:ff:%02x:%02x:%02x", a[13], a[14], a[15])
}

// dhcpDiscover is a client without an address broadcasting to the DHCP
// server port: a DHCPDISCOVER, or a DHCPREQUEST in the selecting state
// (the microflow cannot tell them apart: OVN has no DHCP header fields).
func dhcpDiscover() string {
	return "ip4.src == 0.0.0.0 && ip4.dst == 255.255.255.255 && ip.ttl == 64 && udp.src == 68 && udp.dst == 67"
}

// withTTL replaces the microflow's ip.ttl.
func withTTL(flow string, ttl int) string {
	return ttlRE.ReplaceAllString(flow, fmt.Sprintf("ip.ttl == %d", ttl))
}

// withDst replaces the microflow's IPv6 destination.
func withDst(flow, dst string) string {
	return ip6DstRE.ReplaceAllString(flow, "ip6.dst == "+dst)
}

var (
	ttlRE    = regexp.MustCompile(`ip\.ttl == \d+`)
	ip6DstRE = regexp.MustCompile(`ip6\.dst == [0-9a-fA-F:.]+`)
)

// linkLocal returns the EUI-64 IPv6 link-local address of mac.
func linkLocal(mac string) string {
	hw, err := net.ParseMAC(mac)
	if err != nil {
		panic(err)
	}
	a := [16]byte{0: 0xfe, 1: 0x80, 8: hw[0] ^ 2, 9: hw[1], 10: hw[2], 11: 0xff, 12: 0xfe, 13: hw[3], 14: hw[4], 15: hw[5]}
	return netip.AddrFrom16(a).String()
}

const bcastMAC = "ff:ff:ff:ff:ff:ff"
