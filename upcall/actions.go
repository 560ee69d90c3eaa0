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

// Output is one copy of a packet leaving the pipeline: the datapath port
// it goes to and the packet's fields as it leaves.
type Output struct {
	Port uint16
	Key  field.Key
}

// ErrUnsupportedRewrite says a pipeline changed a header the datapath
// cannot rewrite; the packet is dropped and counted, never sent half
// rewritten.
var ErrUnsupportedRewrite = errors.New("rewrite the datapath cannot do")

// BuildActions returns the datapath actions that send the packet whose
// fields are in to every output in turn, rewriting its headers from what
// the previous output left to what the next one needs.
//
// Outputs go in order of falling TTL (stable otherwise): the datapath can
// decrement a TTL but not raise it, and a flood that leaves unchanged on a
// switch and, decremented, through a router may list the router's copy
// first. Which port gets its copy first means nothing.
func BuildActions(in *field.Key, outs []Output) ([]datapath.Action, error) {
	if !slices.IsSortedFunc(outs, byFallingTTL) {
		outs = slices.Clone(outs)
		slices.SortStableFunc(outs, byFallingTTL)
	}
	var acts []datapath.Action
	cur := *in
	for _, o := range outs {
		a, err := rewrite(&cur, &o.Key)
		if err != nil {
			return nil, fmt.Errorf("output to port %d: %w", o.Port, err)
		}
		acts = append(acts, a...)
		acts = append(acts, datapath.Output(o.Port))
		cur = o.Key
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
	return !pipelineState(id) && !rewritable[id] && id != field.InPort && !shares(id)
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
