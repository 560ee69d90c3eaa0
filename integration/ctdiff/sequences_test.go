// Package ctdiff compares ovsbpf's connection tracking with the kernel's
// nf_conntrack: the same crafted packet sequences go through a namespace
// that forwards under nftables "ct state" rules and through ovsbpf's
// datapath under the same policy as megaflows, and each packet's verdict
// (forwarded or dropped) and each connection's state must agree, or be a
// difference docs/conntrack.md lists with its reason.
package ctdiff

import (
	"fmt"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"

	"github.com/ovsbpf/ovsbpf/internal/testframe"
)

// The two hosts. Neither has an address on its interface: frames are
// written and read raw, so no kernel stack answers them (a stray RST
// would change the connections under test).
var (
	clientIP  = net.IPv4(192, 0, 2, 1).To4()
	serverIP  = net.IPv4(198, 51, 100, 1).To4()
	clientMAC = net.HardwareAddr{0x0a, 0, 0, 0, 0xc, 1}
	serverMAC = net.HardwareAddr{0x0a, 0, 0, 0, 0x5, 1}
)

// The policy both trackers enforce, as an allow-related ACL does:
// replies and related packets of tracked connections pass; a new
// connection passes only from the client to TCP port 80, UDP port 53, or
// as an ICMP echo request; invalid packets and everything else are
// dropped.
const (
	allowedTCPPort = 80
	allowedUDPPort = 53
)

// side is who sends a packet.
type side int

const (
	client side = iota
	server
)

func (s side) String() string { return [...]string{"client", "server"}[s] }

// Initial sequence numbers of the two ends: the steps give sequence and
// acknowledgement numbers relative to them.
const (
	clientISN = 1_000_000
	serverISN = 3_000_000_000 // past 2^31, so sequence arithmetic must wrap
)

// step is one packet of a sequence.
type step struct {
	from side
	// TCP: flags ("S", "SA", "A", "PA", "FA", "R", "RA"), sequence and
	// acknowledgement numbers relative to the sender's and the
	// receiver's initial numbers, window, payload bytes.
	flags    string
	seq, ack int64
	win      uint16
	data     int
	// Other protocols: "udp", "icmp-echo", "icmp-reply", "icmp-unreach"
	// (quoting the sequence's first UDP packet).
	kind string
	// forwarded is the verdict the kernel gives (the oracle's, asserted
	// of nf_conntrack so that the sequence tests what it claims to).
	forwarded bool
}

// sequence is a connection's worth of packets, and the state nf_conntrack
// leaves it in: a TCP state as conntrack -L names it, "replied" or
// "unreplied" for UDP and ICMP, "" for no entry.
type sequence struct {
	name  string
	sport uint16 // the client's port: each sequence its own connection
	steps []step
	state string
}

const defaultWin = 64240

// sequences are the cases of the acceptance: handshake,
// retransmit, RST, half-close, unsolicited ACK, out-of-window, ICMP
// errors, plus UDP and ICMP echo.
var sequences = []sequence{
	{name: "handshake, data both ways, FIN both ways", sport: 40001, state: "TIME_WAIT", steps: []step{
		{from: client, flags: "S", seq: 0, win: defaultWin, forwarded: true},
		{from: server, flags: "SA", seq: 0, ack: 1, win: defaultWin, forwarded: true},
		{from: client, flags: "A", seq: 1, ack: 1, win: defaultWin, forwarded: true},
		{from: client, flags: "PA", seq: 1, ack: 1, win: defaultWin, data: 100, forwarded: true},
		{from: server, flags: "PA", seq: 1, ack: 101, win: defaultWin, data: 50, forwarded: true},
		{from: client, flags: "FA", seq: 101, ack: 51, win: defaultWin, forwarded: true},
		{from: server, flags: "FA", seq: 51, ack: 102, win: defaultWin, forwarded: true},
		{from: client, flags: "A", seq: 102, ack: 52, win: defaultWin, forwarded: true},
	}},
	{name: "retransmitted SYN and data", sport: 40002, state: "ESTABLISHED", steps: []step{
		{from: client, flags: "S", seq: 0, win: defaultWin, forwarded: true},
		{from: client, flags: "S", seq: 0, win: defaultWin, forwarded: true},
		{from: server, flags: "SA", seq: 0, ack: 1, win: defaultWin, forwarded: true},
		{from: client, flags: "A", seq: 1, ack: 1, win: defaultWin, forwarded: true},
		{from: client, flags: "PA", seq: 1, ack: 1, win: defaultWin, data: 100, forwarded: true},
		{from: client, flags: "PA", seq: 1, ack: 1, win: defaultWin, data: 100, forwarded: true},
		{from: server, flags: "A", seq: 1, ack: 101, win: defaultWin, forwarded: true},
	}},
	{name: "RST from the server in the window", sport: 40003, state: "CLOSE", steps: []step{
		{from: client, flags: "S", seq: 0, win: defaultWin, forwarded: true},
		{from: server, flags: "SA", seq: 0, ack: 1, win: defaultWin, forwarded: true},
		{from: client, flags: "A", seq: 1, ack: 1, win: defaultWin, forwarded: true},
		{from: server, flags: "R", seq: 1, win: 0, forwarded: true},
	}},
	{name: "closed port: RST|ACK answers the SYN", sport: 40004, state: "", steps: []step{
		{from: client, flags: "S", seq: 0, win: defaultWin, forwarded: true},
		{from: server, flags: "RA", seq: 0, ack: 1, win: 0, forwarded: true},
	}},
	{name: "half-close: the server sends on after the client's FIN", sport: 40005, state: "CLOSE_WAIT", steps: []step{
		{from: client, flags: "S", seq: 0, win: defaultWin, forwarded: true},
		{from: server, flags: "SA", seq: 0, ack: 1, win: defaultWin, forwarded: true},
		{from: client, flags: "A", seq: 1, ack: 1, win: defaultWin, forwarded: true},
		{from: client, flags: "FA", seq: 1, ack: 1, win: defaultWin, forwarded: true},
		{from: server, flags: "A", seq: 1, ack: 2, win: defaultWin, forwarded: true},
		{from: server, flags: "PA", seq: 1, ack: 2, win: defaultWin, data: 200, forwarded: true},
		{from: client, flags: "A", seq: 2, ack: 201, win: defaultWin, forwarded: true},
	}},
	{name: "unsolicited ACK", sport: 40006, state: "", steps: []step{
		{from: client, flags: "A", seq: 1, ack: 1, win: defaultWin, forwarded: false},
	}},
	{name: "unsolicited SYN from the server", sport: 40007, state: "", steps: []step{
		{from: server, flags: "S", seq: 0, win: defaultWin, forwarded: false},
	}},
	{name: "SYN to a port the policy does not open", sport: 40008, state: "", steps: []step{
		{from: client, flags: "S", seq: 0, win: defaultWin, forwarded: false},
	}},
	{name: "data far beyond the window", sport: 40009, state: "ESTABLISHED", steps: []step{
		{from: client, flags: "S", seq: 0, win: defaultWin, forwarded: true},
		{from: server, flags: "SA", seq: 0, ack: 1, win: 1000, forwarded: true},
		{from: client, flags: "A", seq: 1, ack: 1, win: defaultWin, forwarded: true},
		{from: client, flags: "PA", seq: 1 + 1_000_000, ack: 1, win: defaultWin, data: 100, forwarded: false},
		{from: client, flags: "PA", seq: 1, ack: 1, win: defaultWin, data: 100, forwarded: true},
	}},
	{name: "SYN|FIN", sport: 40010, state: "", steps: []step{
		{from: client, flags: "SF", seq: 0, win: defaultWin, forwarded: false},
	}},
	{name: "UDP request, reply, and an ICMP error quoting it", sport: 40011, state: "replied", steps: []step{
		{from: client, kind: "udp", forwarded: true},
		{from: server, kind: "udp", forwarded: true},
		{from: server, kind: "icmp-unreach", forwarded: true},
	}},
	{name: "unsolicited UDP from the server", sport: 40012, state: "", steps: []step{
		{from: server, kind: "udp", forwarded: false},
	}},
	{name: "ICMP error quoting no connection", sport: 40013, state: "", steps: []step{
		{from: server, kind: "icmp-unreach", forwarded: false},
	}},
	{name: "ICMP echo and its reply", sport: 40014, state: "replied", steps: []step{
		{from: client, kind: "icmp-echo", forwarded: true},
		{from: server, kind: "icmp-reply", forwarded: true},
	}},
	{name: "unsolicited ICMP echo reply", sport: 40015, state: "", steps: []step{
		{from: server, kind: "icmp-reply", forwarded: false},
	}},
}

// frame builds step st of sequence sq as the sender puts it on its wire,
// addressed to the next hop's MAC (the middle of the test topology).
func frame(t testing.TB, sq *sequence, st *step, nextHop net.HardwareAddr) []byte {
	t.Helper()
	srcMAC, srcIP, dstIP := clientMAC, clientIP, serverIP
	if st.from == server {
		srcMAC, srcIP, dstIP = serverMAC, serverIP, clientIP
	}
	sport := sq.sport
	dport := uint16(allowedTCPPort)
	if sq.name == "SYN to a port the policy does not open" {
		dport = 81
	}
	eth := &layers.Ethernet{SrcMAC: srcMAC, DstMAC: nextHop, EthernetType: layers.EthernetTypeIPv4}
	ip := &layers.IPv4{Version: 4, TTL: 64, SrcIP: srcIP, DstIP: dstIP, Flags: layers.IPv4DontFragment}
	switch st.kind {
	case "udp":
		ip.Protocol = layers.IPProtocolUDP
		u := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: allowedUDPPort}
		if st.from == server {
			u.SrcPort, u.DstPort = allowedUDPPort, layers.UDPPort(sport)
		}
		return testframe.Serialize(t, eth, ip, u, gopacket.Payload([]byte("query")))
	case "icmp-echo", "icmp-reply":
		ip.Protocol = layers.IPProtocolICMPv4
		typ := uint8(layers.ICMPv4TypeEchoRequest)
		if st.kind == "icmp-reply" {
			typ = layers.ICMPv4TypeEchoReply
		}
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, 0), Id: sport, Seq: 1}
		return testframe.Serialize(t, eth, ip, ic, gopacket.Payload([]byte("ping")))
	case "icmp-unreach":
		// The server's host says the client's UDP packet found no
		// port: the error quotes that packet's IP header and first
		// eight bytes.
		ip.Protocol = layers.IPProtocolICMPv4
		quoted := testframe.Serialize(t,
			&layers.IPv4{Version: 4, TTL: 63, Protocol: layers.IPProtocolUDP, SrcIP: clientIP, DstIP: serverIP, Flags: layers.IPv4DontFragment},
			&layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: allowedUDPPort}, gopacket.Payload([]byte("query")))
		ic := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4CodePort)}
		return testframe.Serialize(t, eth, ip, ic, gopacket.Payload(quoted[:20+8]))
	case "":
	default:
		panic(fmt.Sprintf("unknown step kind %q", st.kind))
	}
	ip.Protocol = layers.IPProtocolTCP
	seqBase, ackBase := int64(clientISN), int64(serverISN)
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Window: st.win}
	if st.from == server {
		seqBase, ackBase = serverISN, clientISN
		tcp.SrcPort, tcp.DstPort = layers.TCPPort(dport), layers.TCPPort(sport)
	}
	tcp.Seq = uint32(seqBase + st.seq)
	for _, f := range st.flags {
		switch f {
		case 'S':
			tcp.SYN = true
		case 'A':
			tcp.ACK = true
		case 'F':
			tcp.FIN = true
		case 'R':
			tcp.RST = true
		case 'P':
			tcp.PSH = true
		default:
			panic(fmt.Sprintf("unknown TCP flag %q", f))
		}
	}
	if tcp.ACK {
		tcp.Ack = uint32(ackBase + st.ack)
	}
	payload := make([]byte, st.data)
	return testframe.Serialize(t, eth, ip, tcp, gopacket.Payload(payload))
}
