package upcall

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// Output is one step of a decision: a copy of the packet leaving through
// a datapath port, or, with Commit set, a conntrack commit. Key is the
// packet's fields at that step.
type Output struct {
	Port uint16
	Key  field.Key
	// Commit, if not nil, makes the step a conntrack action that does
	// not recirculate (OVN's ct_commit): the datapath runs ct with these
	// parameters on the packet as Key has it, and the packet goes on.
	// Port is unused.
	Commit *CTParams
}

// Freeze ends a decision at a conntrack action that recirculates: after
// the outputs, the packet, rewritten to Key, goes through conntrack with
// CT, and is looked up again with the recirculation id of State. A miss
// there comes up with the conntrack fields the datapath filled in, and
// the pipeline resumes from State (Pipeline.Resume).
type Freeze struct {
	CT  CTParams
	Key field.Key
	// State is the pipeline's frozen state: where and with which
	// registers the pipeline goes on. It must be comparable; equal
	// states share one recirculation id.
	State any
}

// IDs names, for the datapath, what a decision's conntrack actions refer
// to: the ct_params index of a set of parameters and the recirculation
// id of a frozen state. The slow path implements it.
type IDs interface {
	CTParams(p CTParams) (uint32, error)
	RecircID(state any) (uint32, error)
}

// ErrUnsupportedRewrite says a pipeline changed a header the datapath
// cannot rewrite; the packet is dropped and counted, never sent half
// rewritten.
var ErrUnsupportedRewrite = errors.New("rewrite the datapath cannot do")

// BuildActions returns the datapath actions that carry out dec for the
// packet whose fields are in: each output and commit in turn, rewriting
// the packet's headers from what the previous step left to what the next
// one needs, then the freeze, if any, as ct and recirc. ids names the
// conntrack parameters and frozen states; it may be nil for a decision
// with neither.
//
// Outputs go in order of falling TTL (stable otherwise): the datapath can
// decrement a TTL but not raise it, and a flood that leaves unchanged on a
// switch and, decremented, through a router may list the router's copy
// first. Which port gets its copy first means nothing. A decision with
// conntrack steps keeps its order, for a commit must see the packet as
// the pipeline had it there.
func BuildActions(in *field.Key, dec *Decision, ids IDs) ([]datapath.Action, error) {
	outs := dec.Outputs
	hasCT := dec.Freeze != nil || slices.ContainsFunc(outs, func(o Output) bool { return o.Commit != nil })
	if !slices.IsSortedFunc(outs, byFallingTTL) {
		if hasCT {
			return nil, fmt.Errorf("conntrack steps between copies whose TTLs rise: %w", ErrUnsupportedRewrite)
		}
		outs = slices.Clone(outs)
		slices.SortStableFunc(outs, byFallingTTL)
	}
	if hasCT && ids == nil {
		return nil, errors.New("building actions: a conntrack decision with nothing to name its parameters")
	}
	var acts []datapath.Action
	cur := *in
	step := func(to *field.Key, what string) error {
		a, err := rewrite(&cur, to)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		acts = append(acts, a...)
		cur = *to
		return nil
	}
	for _, o := range outs {
		if o.Commit != nil {
			if err := step(&o.Key, "conntrack commit"); err != nil {
				return nil, err
			}
			p, err := ids.CTParams(*o.Commit)
			if err != nil {
				return nil, fmt.Errorf("conntrack commit: %w", err)
			}
			acts = append(acts, datapath.CT(p))
			continue
		}
		if err := step(&o.Key, fmt.Sprintf("output to port %d", o.Port)); err != nil {
			return nil, err
		}
		acts = append(acts, datapath.Output(o.Port))
	}
	if f := dec.Freeze; f != nil {
		if err := step(&f.Key, "conntrack"); err != nil {
			return nil, err
		}
		p, err := ids.CTParams(f.CT)
		if err != nil {
			return nil, fmt.Errorf("conntrack: %w", err)
		}
		r, err := ids.RecircID(f.State)
		if err != nil {
			return nil, fmt.Errorf("recirculation: %w", err)
		}
		acts = append(acts, datapath.CT(p), datapath.Recirc(r))
	}
	return acts, nil
}

func byFallingTTL(a, b Output) int {
	return cmp.Compare(b.Key.Get(field.IPTTL).Lo, a.Key.Get(field.IPTTL).Lo)
}

// header fields rewrite knows; every other packet field must not change.
var rewritable = map[field.ID]bool{
	field.EthSrc: true, field.EthDst: true, field.VLANTCI: true,
	field.IPv4Src: true, field.IPv4Dst: true, field.IPTTL: true,
	field.TCPSrc: true, field.TCPDst: true,
	field.ARPOp: true, field.ARPSHA: true, field.ARPTHA: true,
}

// rewrite returns the actions that turn the packet from into to.
func rewrite(from, to *field.Key) ([]datapath.Action, error) {
	var acts []datapath.Action
	changed := func(id field.ID) bool { return from.Get(id) != to.Get(id) }
	mac := func(k *field.Key, id field.ID) [6]byte { return [6]byte(storage(k, id)) }

	for i := range from {
		if (from[i]^to[i])&unrewritable[i] == 0 {
			continue
		}
		// Some field the datapath cannot rewrite changed: name it.
		for _, d := range field.All() {
			if fixed(d.ID) && changed(d.ID) {
				return nil, fmt.Errorf("%s %s -> %s: %w", d.Name, from.Get(d.ID), to.Get(d.ID), ErrUnsupportedRewrite)
			}
		}
	}

	ethType := from.Get(field.EthType).Lo
	if ethType != field.EthTypeARP {
		// Outside ARP these storages hold ip.proto, nd.sll and nd.tll.
		for _, id := range []field.ID{field.ARPOp, field.ARPSHA, field.ARPTHA} {
			if changed(id) {
				return nil, fmt.Errorf("%s of a packet of type %#04x: %w", field.Lookup(id).Name, ethType, ErrUnsupportedRewrite)
			}
		}
	}
	if changed(field.EthSrc) {
		acts = append(acts, datapath.SetEthSrc(mac(to, field.EthSrc)))
	}
	if changed(field.EthDst) {
		acts = append(acts, datapath.SetEthDst(mac(to, field.EthDst)))
	}
	switch ethType {
	case field.EthTypeARP:
		a, err := arpRewrite(from, to)
		if err != nil {
			return nil, err
		}
		acts = append(acts, a...)
	case field.EthTypeIPv4, field.EthTypeIPv6:
		if ethType == field.EthTypeIPv4 {
			if changed(field.IPv4Src) {
				acts = append(acts, datapath.SetIPv4Src(addr4(to, field.IPv4Src)))
			}
			if changed(field.IPv4Dst) {
				acts = append(acts, datapath.SetIPv4Dst(addr4(to, field.IPv4Dst)))
			}
		}
		if changed(field.TCPSrc) || changed(field.TCPDst) {
			proto := from.Get(field.IPProto).Lo
			if proto != field.ProtoTCP && proto != field.ProtoUDP {
				return nil, fmt.Errorf("L4 ports of IP protocol %d: %w", proto, ErrUnsupportedRewrite)
			}
			if changed(field.TCPSrc) {
				acts = append(acts, datapath.SetL4Src(uint16(to.Get(field.TCPSrc).Lo)))
			}
			if changed(field.TCPDst) {
				acts = append(acts, datapath.SetL4Dst(uint16(to.Get(field.TCPDst).Lo)))
			}
		}
		fromTTL, toTTL := from.Get(field.IPTTL).Lo, to.Get(field.IPTTL).Lo
		if toTTL > fromTTL {
			return nil, fmt.Errorf("ttl raised from %d to %d: %w", fromTTL, toTTL, ErrUnsupportedRewrite)
		}
		for i := toTTL; i < fromTTL; i++ {
			acts = append(acts, datapath.DecTTL())
		}
	default:
		for _, id := range []field.ID{field.IPv4Src, field.IPv4Dst, field.IPTTL, field.TCPSrc, field.TCPDst} {
			if changed(id) {
				return nil, fmt.Errorf("%s of a packet of type %#04x: %w", id, ethType, ErrUnsupportedRewrite)
			}
		}
	}
	if changed(field.VLANTCI) {
		fromTCI, toTCI := uint16(from.Get(field.VLANTCI).Lo), uint16(to.Get(field.VLANTCI).Lo)
		if fromTCI&datapath.VLANPresent != 0 {
			acts = append(acts, datapath.PopVLAN())
		}
		if toTCI&datapath.VLANPresent != 0 {
			acts = append(acts, datapath.PushVLAN(toTCI))
		}
	}
	return acts, nil
}

// fixed reports whether id is a packet field the datapath cannot rewrite.
func fixed(id field.ID) bool {
	// A conntrack field is what the datapath's last ct action said, not
	// a header, so a pipeline's change to it (ct_clear, crossing a patch
	// port, a commit) is no rewrite: the next lookup that reads it comes
	// after the next ct, which sets it anew.
	return !pipelineState(id) && !field.IsConntrack(id) && !rewritable[id] && id != field.InPort && !shares(id)
}

// unrewritable has every bit of the key set that a fixed field stores, so
// that one pass over two keys tells whether a rewrite is possible.
var unrewritable = func() field.Mask {
	var m field.Mask
	for _, d := range field.All() {
		if fixed(d.ID) {
			for i := d.Off; i < d.Off+d.Size; i++ {
				m[i] = 0xff
			}
		}
	}
	return m
}()

// shares reports whether id stores its value in a rewritable field's
// storage (udp_src in tcp_src's, arp_spa in ip4.src's, nd_sll in
// arp_sha's), so that its change is that field's change.
func shares(id field.ID) bool {
	off := field.Lookup(id).Off
	for r := range rewritable {
		if field.Lookup(r).Off == off {
			return true
		}
	}
	return false
}

func addr4(k *field.Key, id field.ID) netip.Addr { return netip.AddrFrom4([4]byte(storage(k, id))) }

// arpHeader lays out the rewritable part of an Ethernet/IPv4 ARP header
// from a key: bytes 6..27 (op, sha, spa, tha, tpa).
func arpHeader(k *field.Key) []byte {
	h := make([]byte, datapath.ARPHeaderLen)
	h[7] = byte(k.Get(field.ARPOp).Lo)
	copy(h[8:14], storage(k, field.ARPSHA))
	copy(h[14:18], storage(k, field.ARPSPA))
	copy(h[18:24], storage(k, field.ARPTHA))
	copy(h[24:28], storage(k, field.ARPTPA))
	return h
}

// arpRewrite writes the ARP header bytes that differ, in runs of at most
// eight bytes; runs closer than a few bytes merge, as one write costs less
// than two.
func arpRewrite(from, to *field.Key) ([]datapath.Action, error) {
	if from.Get(field.ARPOp).Lo>>8 != 0 || to.Get(field.ARPOp).Lo>>8 != 0 {
		return nil, fmt.Errorf("arp.op above 255: %w", ErrUnsupportedRewrite)
	}
	a, b := arpHeader(from), arpHeader(to)
	if bytes.Equal(a, b) {
		return nil, nil
	}
	var acts []datapath.Action
	for i := 6; i < len(b); {
		if a[i] == b[i] {
			i++
			continue
		}
		end := i + 1
		for j := i + 1; j < len(b) && j < i+8; j++ {
			if a[j] != b[j] {
				end = j + 1
			}
		}
		act, err := datapath.SetARP(i, b[i:end])
		if err != nil {
			return nil, err
		}
		acts = append(acts, act)
		i = end
	}
	return acts, nil
}
