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

// BlockActions is the number of actions in one block of an action list
// (OVSBPF_MAX_ACTIONS): a list this long takes one array slot at the
// flow's id; a longer one chains blocks from a pool (see
// bpf/include/flow.h).
const BlockActions = len(bpf.DatapathOvsbpfActions{}.A)

// MaxActionBlocks is OVSBPF_MAX_ACTION_BLOCKS: the blocks one list chains,
// its first included, and so the executor's bound.
const MaxActionBlocks = int(bpf.DatapathOvsbpfLimitOVSBPF_MAX_ACTION_BLOCKS)

// MaxActions is the most actions one megaflow holds: a flood to 256 ports
// with a rewrite before each output, or to 512 plain outputs.
const MaxActions = BlockActions * MaxActionBlocks

// ErrTooManyActions is returned for an action list longer than MaxActions;
// such a flow stays in the slow path.
var ErrTooManyActions = fmt.Errorf("more than %d actions", MaxActions)

// Action is one datapath action. An empty list drops the packet.
type Action struct {
	Type ActionType
	Port uint16  // Output
	Arg  uint32  // PushVLAN: TCI; Recirc: recirc_id (32 bits); CT: ct_params index
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

// CT sends the packet through connection tracking with the parameters
// (zone, commit, NAT, mark and label writes) at index params of the
// datapath's ct_params array, and fills the key's conntrack fields; a
// Recirc after it looks the packet up again with them.
func CT(params uint32) Action { return Action{Type: ActionCT, Arg: params} }

// Recirc looks the packet up again with recirc_id id: the next pass.
func Recirc(id uint32) Action { return Action{Type: ActionRecirc, Arg: id} }

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
		return fmt.Sprintf("ct(params=%d)", a.Arg)
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

// blocksFor returns how many blocks a list of n actions takes (one at
// least: an empty list is one block that ends at once).
func blocksFor(n int) int { return max(1, (n+BlockActions-1)/BlockActions) }

// encodeActions lays an action list out as the executor reads it: blocks
// of BlockActions, the first carrying gen. The caller links them (Next)
// to where it writes them.
func encodeActions(as []Action, gen uint32) ([]bpf.DatapathOvsbpfActions, error) {
	if len(as) > MaxActions {
		return nil, fmt.Errorf("%w: %d actions", ErrTooManyActions, len(as))
	}
	out := make([]bpf.DatapathOvsbpfActions, blocksFor(len(as)))
	out[0].Gen = gen
	for i, a := range as {
		if a.Type == 0 || a.Type >= ActionType(bpf.DatapathOvsbpfActionTypeOVSBPF_ACTION__MAX) {
			return nil, fmt.Errorf("action %d: %w", i, errBadActionType(a.Type))
		}
		out[i/BlockActions].A[i%BlockActions] = bpf.DatapathOvsbpfAction{Type: uint16(a.Type), Port: a.Port, Arg: a.Arg, Data: a.Data}
	}
	return out, nil
}

// linkBlocks points each block at the next, which is written at index
// idx[i] of action_blocks (blocks[i+1] at idx[i]).
func linkBlocks(blocks []bpf.DatapathOvsbpfActions, idx []uint32) {
	for i := range blocks {
		blocks[i].Next = 0
		if i < len(idx) {
			blocks[i].Next = idx[i]
		}
	}
}

// appendDecoded appends the actions of one block to out and says whether
// the list ended in it.
func appendDecoded(out []Action, in *bpf.DatapathOvsbpfActions) ([]Action, bool) {
	for _, a := range in.A {
		if a.Type == 0 {
			return out, true
		}
		out = append(out, Action{Type: ActionType(a.Type), Port: a.Port, Arg: a.Arg, Data: a.Data})
	}
	return out, in.Next == 0
}

var errUnknownAction = errors.New("unknown action type")

func errBadActionType(t ActionType) error { return fmt.Errorf("%w %d", errUnknownAction, t) }
