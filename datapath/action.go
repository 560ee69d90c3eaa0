package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// ActionType is what one datapath action does (enum ovsbpf_action_type).
type ActionType uint16

// Action types; see bpf/include/flow.h for what the executor does with each.
const (
	ActionOutput     = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_OUTPUT)
	ActionSetEthSrc  = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_SET_ETH_SRC)
	ActionSetEthDst  = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_SET_ETH_DST)
	ActionSetIPv4Src = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_SET_IPV4SRC)
	ActionSetIPv4Dst = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_SET_IPV4DST)
	ActionSetL4Src   = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_SET_TP_SRC)
	ActionSetL4Dst   = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_SET_TP_DST)
	ActionDecTTL     = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_DEC_TTL)
	ActionPushVLAN   = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_PUSH_VLAN)
	ActionPopVLAN    = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_POP_VLAN)
	ActionUserspace  = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_USERSPACE)
	ActionCT         = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_CT)
	ActionRecirc     = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_RECIRC)
	ActionSetARP     = ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION_SET_ARP)
)

// ARPHeaderLen is the length of an Ethernet/IPv4 ARP header, the only kind
// SetARP rewrites.
const ARPHeaderLen = 28

// MaxActions is the most actions one megaflow holds.
const MaxActions = len(bpf.DatapathOvsbpfActions{}.A)

// ErrTooManyActions is returned for an action list longer than MaxActions;
// such a flow stays in the slow path.
var ErrTooManyActions = fmt.Errorf("more than %d actions", MaxActions)

// Action is one datapath action. An empty list drops the packet.
type Action struct {
	Type ActionType
	Port uint16  // Output
	Arg  uint32  // PushVLAN: TCI; Recirc: recirc_id; CT: zone
	Data [8]byte // Set*: the new value, in network byte order
}

// Output sends the packet to datapath port port.
func Output(port uint16) Action { return Action{Type: ActionOutput, Port: port} }

// SetEthSrc rewrites the Ethernet source.
func SetEthSrc(mac [6]byte) Action { return setBytes(ActionSetEthSrc, mac[:]) }

// SetEthDst rewrites the Ethernet destination.
func SetEthDst(mac [6]byte) Action { return setBytes(ActionSetEthDst, mac[:]) }

// SetIPv4Src rewrites the IPv4 source and fixes the checksums.
func SetIPv4Src(a netip.Addr) Action { b := a.As4(); return setBytes(ActionSetIPv4Src, b[:]) }

// SetIPv4Dst rewrites the IPv4 destination and fixes the checksums.
func SetIPv4Dst(a netip.Addr) Action { b := a.As4(); return setBytes(ActionSetIPv4Dst, b[:]) }

// SetL4Src rewrites the TCP or UDP source port and fixes the checksum.
func SetL4Src(port uint16) Action { return setPort(ActionSetL4Src, port) }

// SetL4Dst rewrites the TCP or UDP destination port and fixes the checksum.
func SetL4Dst(port uint16) Action { return setPort(ActionSetL4Dst, port) }

// DecTTL decrements the IPv4 TTL or IPv6 hop limit; a packet whose TTL
// would reach 0 goes to user space instead.
func DecTTL() Action { return Action{Type: ActionDecTTL} }

// PushVLAN adds an 802.1Q tag with the given TCI (VLANPresent is ignored).
func PushVLAN(tci uint16) Action {
	return Action{Type: ActionPushVLAN, Arg: uint32(tci &^ VLANPresent)}
}

// PopVLAN removes the outer VLAN tag.
func PopVLAN() Action { return Action{Type: ActionPopVLAN} }

// Userspace sends a copy of the packet to user space.
func Userspace() Action { return Action{Type: ActionUserspace} }

// CT sends the packet through connection tracking in zone.
func CT(zone uint16, commit bool) Action {
	a := Action{Type: ActionCT, Arg: uint32(zone)}
	if commit {
		a.Data[0] = uint8(bpf.DatapathOvsbpfCtFlagOVSBPF_CT_COMMIT)
	}
	return a
}

// Recirc looks the packet up again with recirc_id id.
func Recirc(id uint16) Action { return Action{Type: ActionRecirc, Arg: uint32(id)} }

// SetARP writes b (1 to 8 bytes) at offset off of the ARP header: op is at
// 6, sha 8, spa 14, tha 18, tpa 24. It returns an error for a write outside
// the header.
func SetARP(off int, b []byte) (Action, error) {
	if len(b) < 1 || len(b) > 8 || off < 0 || off+len(b) > ARPHeaderLen {
		return Action{}, fmt.Errorf("ARP rewrite of %d bytes at offset %d: outside the %d-byte header or not 1 to 8 bytes", len(b), off, ARPHeaderLen)
	}
	a := setBytes(ActionSetARP, b)
	a.Arg = uint32(off) | uint32(len(b)-1)<<8
	return a, nil
}

func setBytes(t ActionType, b []byte) Action {
	a := Action{Type: t}
	copy(a.Data[:], b)
	return a
}

func setPort(t ActionType, port uint16) Action {
	a := Action{Type: t}
	binary.BigEndian.PutUint16(a.Data[:], port)
	return a
}

// String writes the action in Open vSwitch's datapath action syntax.
func (a Action) String() string {
	switch a.Type {
	case ActionOutput:
		return fmt.Sprint(a.Port)
	case ActionSetEthSrc:
		return "set(eth(src=" + net.HardwareAddr(a.Data[:6]).String() + "))"
	case ActionSetEthDst:
		return "set(eth(dst=" + net.HardwareAddr(a.Data[:6]).String() + "))"
	case ActionSetIPv4Src:
		return "set(ipv4(src=" + netip.AddrFrom4([4]byte(a.Data[:4])).String() + "))"
	case ActionSetIPv4Dst:
		return "set(ipv4(dst=" + netip.AddrFrom4([4]byte(a.Data[:4])).String() + "))"
	case ActionSetL4Src:
		return fmt.Sprintf("set(l4(src=%d))", binary.BigEndian.Uint16(a.Data[:]))
	case ActionSetL4Dst:
		return fmt.Sprintf("set(l4(dst=%d))", binary.BigEndian.Uint16(a.Data[:]))
	case ActionDecTTL:
		return "dec_ttl"
	case ActionPushVLAN:
		return fmt.Sprintf("push_vlan(vid=%d,pcp=%d)", a.Arg&0xfff, a.Arg>>13&7)
	case ActionPopVLAN:
		return "pop_vlan"
	case ActionUserspace:
		return "userspace"
	case ActionCT:
		s := fmt.Sprintf("ct(zone=%d", a.Arg)
		if a.Data[0]&uint8(bpf.DatapathOvsbpfCtFlagOVSBPF_CT_COMMIT) != 0 {
			s += ",commit"
		}
		return s + ")"
	case ActionRecirc:
		return fmt.Sprintf("recirc(%#x)", a.Arg)
	case ActionSetARP:
		off, n := a.Arg&0x1f, a.Arg>>8&7+1
		return fmt.Sprintf("set(arp(bytes@%d=%x))", off, a.Data[:n])
	}
	return fmt.Sprintf("unknown(%d)", a.Type)
}

// FormatActions writes an action list as ovs-dpctl does; empty is "drop".
func FormatActions(as []Action) string {
	if len(as) == 0 {
		return "drop"
	}
	s := make([]string, len(as))
	for i, a := range as {
		s[i] = a.String()
	}
	return strings.Join(s, ",")
}

// encodeActions lays an action list out as the executor reads it.
func encodeActions(as []Action, gen uint32) (bpf.DatapathOvsbpfActions, error) {
	out := bpf.DatapathOvsbpfActions{Gen: gen}
	if len(as) > MaxActions {
		return out, fmt.Errorf("%w: %s", ErrTooManyActions, FormatActions(as))
	}
	for i, a := range as {
		if a.Type == 0 || a.Type >= ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION__MAX) {
			return out, fmt.Errorf("action %d: %w", i, errBadActionType(a.Type))
		}
		out.A[i] = bpf.DatapathOvsbpfAction{Type: uint16(a.Type), Port: a.Port, Arg: a.Arg, Data: a.Data}
	}
	return out, nil
}

func decodeActions(in *bpf.DatapathOvsbpfActions) []Action {
	var out []Action
	for _, a := range in.A {
		if a.Type == 0 {
			break
		}
		out = append(out, Action{Type: ActionType(a.Type), Port: a.Port, Arg: a.Arg, Data: a.Data})
	}
	return out
}

var errUnknownAction = errors.New("unknown action type")

func errBadActionType(t ActionType) error { return fmt.Errorf("%w %d", errUnknownAction, t) }
