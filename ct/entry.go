package ct

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/bits"
	"net/netip"
	"strings"
	"time"
)

// Conntrack state bits as the datapath writes them into the key's
// ct_state (OVS's CS_* numbering, the same as flowxlate/field's CS*).
const (
	StateNew    = uint8(layoutOvsbpfCtStateOVSBPF_CS_NEW)
	StateEst    = uint8(layoutOvsbpfCtStateOVSBPF_CS_EST)
	StateRel    = uint8(layoutOvsbpfCtStateOVSBPF_CS_REL)
	StateRpl    = uint8(layoutOvsbpfCtStateOVSBPF_CS_RPL)
	StateInv    = uint8(layoutOvsbpfCtStateOVSBPF_CS_INV)
	StateTrk    = uint8(layoutOvsbpfCtStateOVSBPF_CS_TRK)
	StateSrcNAT = uint8(layoutOvsbpfCtStateOVSBPF_CS_SNAT)
	StateDstNAT = uint8(layoutOvsbpfCtStateOVSBPF_CS_DNAT)
)

// StateString names ct_state bits as ovs-ofctl does: "+trk+est+rpl".
func StateString(s uint8) string {
	names := []string{"new", "est", "rel", "rpl", "inv", "trk", "snat", "dnat"}
	var b strings.Builder
	for i, n := range names {
		if s&(1<<i) != 0 {
			b.WriteString("+" + n)
		}
	}
	if b.Len() == 0 {
		return "0"
	}
	return b.String()
}

// Timeout is a timeout class (OVS's CT_TIMEOUTS, ct_timeouts' index).
type Timeout uint32

// The timeout classes.
const (
	TCPFirstPacket = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_TCP_FIRST_PACKET)
	TCPOpening     = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_TCP_OPENING)
	TCPEstablished = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_TCP_ESTABLISHED)
	TCPClosing     = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_TCP_CLOSING)
	TCPFinWait     = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_TCP_FIN_WAIT)
	TCPClosed      = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_TCP_CLOSED)
	OtherFirst     = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_OTHER_FIRST)
	OtherMultiple  = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_OTHER_MULTIPLE)
	OtherBidir     = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_OTHER_BIDIR)
	ICMPFirst      = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_ICMP_FIRST)
	ICMPReply      = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM_ICMP_REPLY)
	numTimeouts    = Timeout(layoutOvsbpfCtTimeoutOVSBPF_CT_TM__MAX)
)

var timeoutNames = [numTimeouts]string{"TCP_FIRST_PACKET", "TCP_OPENING", "TCP_ESTABLISHED", "TCP_CLOSING",
	"TCP_FIN_WAIT", "TCP_CLOSED", "OTHER_FIRST", "OTHER_MULTIPLE", "OTHER_BIDIR", "ICMP_FIRST", "ICMP_REPLY"}

var timeoutDefaults = [numTimeouts]layoutOvsbpfCtTimeoutDefault{
	layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_TCP_FIRST_PACKET, layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_TCP_OPENING,
	layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_TCP_ESTABLISHED, layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_TCP_CLOSING,
	layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_TCP_FIN_WAIT, layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_TCP_CLOSED,
	layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_OTHER_FIRST, layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_OTHER_MULTIPLE,
	layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_OTHER_BIDIR, layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_ICMP_FIRST,
	layoutOvsbpfCtTimeoutDefaultOVSBPF_CT_DEF_ICMP_REPLY,
}

func (tm Timeout) String() string {
	if tm < numTimeouts {
		return timeoutNames[tm]
	}
	return fmt.Sprintf("timeout(%d)", uint32(tm))
}

// Default is OVS's userspace default for the class (ct.h's
// enum ovsbpf_ct_timeout_default).
func (tm Timeout) Default() time.Duration {
	if tm >= numTimeouts {
		return 0
	}
	return time.Duration(timeoutDefaults[tm]) * time.Second
}

// TCPState is one direction's TCP state, numbered as OVS's
// ct_dpif_tcp_state.
type TCPState uint8

// The TCP states the tracker uses (pf's subset of the numbering).
const (
	TCPSClosed      = TCPState(layoutOvsbpfTcpStateOVSBPF_TCPS_CLOSED)
	TCPSSynSent     = TCPState(layoutOvsbpfTcpStateOVSBPF_TCPS_SYN_SENT)
	TCPSSynRecv     = TCPState(layoutOvsbpfTcpStateOVSBPF_TCPS_SYN_RECV)
	TCPSEstablished = TCPState(layoutOvsbpfTcpStateOVSBPF_TCPS_ESTABLISHED)
	TCPSClosing     = TCPState(layoutOvsbpfTcpStateOVSBPF_TCPS_CLOSING)
	TCPSFinWait2    = TCPState(layoutOvsbpfTcpStateOVSBPF_TCPS_FIN_WAIT_2)
	TCPSTimeWait    = TCPState(layoutOvsbpfTcpStateOVSBPF_TCPS_TIME_WAIT)
	numTCPStates    = TCPState(layoutOvsbpfTcpStateOVSBPF_TCPS__MAX)
)

var tcpStateNames = [numTCPStates]string{"CLOSED", "LISTEN", "SYN_SENT", "SYN_RECV", "ESTABLISHED",
	"CLOSE_WAIT", "FIN_WAIT_1", "CLOSING", "LAST_ACK", "FIN_WAIT_2", "TIME_WAIT"}

func (s TCPState) String() string {
	if s < numTCPStates {
		return tcpStateNames[s]
	}
	return fmt.Sprintf("[%d]", uint8(s))
}

// coalesce folds the states OVS's dump folds when it is not verbose
// (ct-dpif.c coalesce_tcp_state): FIN_WAIT_2 shows as TIME_WAIT,
// SYN_RECV as ESTABLISHED.
func (s TCPState) coalesce() TCPState {
	switch s {
	case TCPSFinWait2:
		return TCPSTimeWait
	case TCPSSynRecv:
		return TCPSEstablished
	}
	return s
}

// Tuple is one direction of a connection.
type Tuple struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16 // TCP, UDP, SCTP
	ICMPID           uint16 // ICMP queries
	ICMPType         uint8
	ICMPCode         uint8
}

// Entry is one connection as a dump shows it.
type Entry struct {
	ID        uint32
	Proto     uint8
	Orig      Tuple
	Reply     Tuple
	Zone      uint16
	Mark      uint32
	Label     [16]byte      // big endian
	TCP       [2]TCPState   // original and reply direction (TCP only)
	Timeout   time.Duration // time left
	SeenReply bool
}

func tupleOf(r *RawTuple) Tuple {
	var src, dst [4]byte
	binary.LittleEndian.PutUint32(src[:], r.Src) // network order bytes, read as host (little endian) order
	binary.LittleEndian.PutUint32(dst[:], r.Dst)
	t := Tuple{Src: netip.AddrFrom4(src), Dst: netip.AddrFrom4(dst)}
	if r.Proto == 1 { // ICMP: id, then type and code bytes
		t.ICMPID = bits.ReverseBytes16(r.Sport)
		t.ICMPType, t.ICMPCode = uint8(r.Dport), uint8(r.Dport>>8)
	} else {
		t.SrcPort, t.DstPort = bits.ReverseBytes16(r.Sport), bits.ReverseBytes16(r.Dport)
	}
	return t
}

func entryOf(id uint32, c *RawConn, leftMS int32) Entry {
	e := Entry{
		ID:        id,
		Proto:     c.Orig.Proto,
		Orig:      tupleOf(&c.Orig),
		Reply:     tupleOf(&c.Reply),
		Zone:      c.Orig.Zone,
		Mark:      c.Mark,
		Label:     c.Label,
		SeenReply: c.Flags&uint32(layoutOvsbpfCtConnFlagOVSBPF_CTF_SEEN_REPLY) != 0,
	}
	if leftMS > 0 {
		e.Timeout = time.Duration(leftMS) * time.Millisecond
	}
	if e.Proto == 6 {
		e.TCP = [2]TCPState{TCPState(c.Peer[0].State), TCPState(c.Peer[1].State)}
	}
	return e
}

// protoName is OVS's ct_dpif_format_ipproto.
func protoName(p uint8) string {
	switch p {
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 132:
		return "sctp"
	case 136:
		return "udplite"
	case 33:
		return "dccp"
	case 2:
		return "igmp"
	}
	return fmt.Sprint(p)
}

func (e Entry) formatTuple(b *strings.Builder, t Tuple) {
	fmt.Fprintf(b, "src=%s,dst=%s", t.Src, t.Dst)
	if e.Proto == 1 || e.Proto == 58 {
		fmt.Fprintf(b, ",id=%d,type=%d,code=%d", t.ICMPID, t.ICMPType, t.ICMPCode)
	} else {
		fmt.Fprintf(b, ",sport=%d,dport=%d", t.SrcPort, t.DstPort)
	}
}

// String formats the entry as Open vSwitch's dpctl/dump-conntrack does
// without -m or -s (lib/ct-dpif.c ct_dpif_format_entry): zone, mark and
// labels only when nonzero; for TCP the higher of the two directions'
// states, coalesced as OVS does.
func (e Entry) String() string { return e.format(false) }

// StringWithTimeout is the `dump-conntrack -s` form without packet
// counters (the datapath keeps none): it adds timeout= (seconds left).
func (e Entry) StringWithTimeout() string { return e.format(true) }

func (e Entry) format(timeout bool) string {
	var b strings.Builder
	b.WriteString(protoName(e.Proto))
	b.WriteString(",orig=(")
	e.formatTuple(&b, e.Orig)
	b.WriteString("),reply=(")
	e.formatTuple(&b, e.Reply)
	b.WriteString(")")
	if e.Zone != 0 {
		fmt.Fprintf(&b, ",zone=%d", e.Zone)
	}
	if timeout {
		fmt.Fprintf(&b, ",timeout=%d", int(e.Timeout/time.Second))
	}
	if e.Mark != 0 {
		fmt.Fprintf(&b, ",mark=%d", e.Mark)
	}
	if e.Label != ([16]byte{}) {
		// OVS prints the 128-bit value in hex from its first nonzero
		// byte, that byte unpadded: the leading zero digits go.
		b.WriteString(",labels=0x" + strings.TrimLeft(hex.EncodeToString(e.Label[:]), "0"))
	}
	if e.Proto == 6 {
		st := max(e.TCP[0], e.TCP[1]).coalesce()
		fmt.Fprintf(&b, ",protoinfo=(state=%s)", st)
	}
	return b.String()
}

// Stats counts connections as dpctl/ct-stats-show does.
type Stats struct {
	Total     int
	ByProto   map[uint8]int
	TCPStates map[TCPState]int // coalesced, as OVS counts them
}

// Stats counts the live connections, of one zone when zone is not nil.
func (t *Table) Stats(zone *uint16) (Stats, error) {
	es, err := t.Dump(zone)
	if err != nil {
		return Stats{}, err
	}
	s := Stats{ByProto: map[uint8]int{}, TCPStates: map[TCPState]int{}}
	for _, e := range es {
		s.Total++
		s.ByProto[e.Proto]++
		if e.Proto == 6 {
			s.TCPStates[max(e.TCP[0], e.TCP[1]).coalesce()]++
		}
	}
	return s, nil
}

// Format prints the statistics as OVS's dpctl/ct-stats-show does;
// verbose adds the per-TCP-state lines (-m).
func (s Stats) Format(verbose bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Connections Stats:\n    Total: %d\n", s.Total)
	other := 0
	for p, n := range s.ByProto {
		switch p {
		case 1, 58, 6, 17, 132, 136, 33, 2:
		default:
			other += n
		}
	}
	line := func(name string, n int) {
		if n != 0 {
			fmt.Fprintf(&b, "  %s: %d\n", name, n)
		}
	}
	line("TCP", s.ByProto[6])
	if verbose && s.ByProto[6] != 0 {
		b.WriteString("    Conn per TCP states:\n")
		for st := TCPState(0); st < numTCPStates; st++ {
			if n := s.TCPStates[st]; n != 0 {
				fmt.Fprintf(&b, "\t  [%s]=%d\n", st, n)
			}
		}
	}
	line("UDP", s.ByProto[17])
	line("UDPLITE", s.ByProto[136])
	line("SCTP", s.ByProto[132])
	line("ICMP", s.ByProto[1])
	line("DCCP", s.ByProto[33])
	line("IGMP", s.ByProto[2])
	line("Other", other)
	return b.String()
}
