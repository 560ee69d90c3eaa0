package datapath

import (
	"fmt"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// Counters are the datapath's packet counters, summed over CPUs.
type Counters struct {
	EMCHits      uint64 // lookups the exact-match cache answered
	MaskHits     uint64 // lookups the tuple space search answered
	Misses       uint64 // lookups nothing answered: upcalls
	UpcallsLost  uint64 // upcalls the ring had no room for
	UnknownPort  uint64 // packets from an interface that is no port
	ActionErrors uint64 // packets dropped because an action failed
	RecircLimit  uint64 // packets dropped for recirculating too often
	MaskProbes   uint64 // masks the tuple space search tried
	// Drops counts malformed packets by reason (the parser's names).
	Drops map[string]uint64
}

// Lookups is the number of megaflow cache lookups.
func (c *Counters) Lookups() uint64 { return c.EMCHits + c.MaskHits + c.Misses }

// Counters reads the datapath's counters.
func (d *Datapath) Counters() (Counters, error) {
	var c Counters
	fields := map[bpf.DatapathOvsbpfCounter]*uint64{
		bpf.DatapathOvsbpfCounterOVSBPF_CNT_EMC_HIT:      &c.EMCHits,
		bpf.DatapathOvsbpfCounterOVSBPF_CNT_MASK_HIT:     &c.MaskHits,
		bpf.DatapathOvsbpfCounterOVSBPF_CNT_MISS:         &c.Misses,
		bpf.DatapathOvsbpfCounterOVSBPF_CNT_UPCALL_LOST:  &c.UpcallsLost,
		bpf.DatapathOvsbpfCounterOVSBPF_CNT_UNKNOWN_PORT: &c.UnknownPort,
		bpf.DatapathOvsbpfCounterOVSBPF_CNT_ACTION_ERROR: &c.ActionErrors,
		bpf.DatapathOvsbpfCounterOVSBPF_CNT_RECIRC_LIMIT: &c.RecircLimit,
		bpf.DatapathOvsbpfCounterOVSBPF_CNT_MASK_PROBES:  &c.MaskProbes,
	}
	for idx, dst := range fields {
		var per []uint64
		if err := d.objs.Counters.Lookup(uint32(idx), &per); err != nil {
			return c, fmt.Errorf("reading counter %d: %w", idx, err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	c.Drops = map[string]uint64{}
	for r := bpf.DatapathOvsbpfDropOVSBPF_PARSE_OK + 1; r < bpf.DatapathOvsbpfDropOVSBPF_DROP__MAX; r++ {
		var per []uint64
		if err := d.objs.Drops.Lookup(uint32(r), &per); err != nil {
			return c, fmt.Errorf("reading drop counter %s: %w", DropReason(r), err)
		}
		var n uint64
		for _, v := range per {
			n += v
		}
		if n > 0 {
			c.Drops[DropReason(r)] = n
		}
	}
	return c, nil
}

var dropReasons = map[bpf.DatapathOvsbpfDrop]string{
	bpf.DatapathOvsbpfDropOVSBPF_DROP_SHORT_ETH:    "short_eth",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_SHORT_VLAN:   "short_vlan",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_STACKED_VLAN: "stacked_vlan",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_SHORT_ARP:    "short_arp",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_BAD_ARP:      "bad_arp",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_SHORT_IPV4:   "short_ipv4",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_BAD_IPV4:     "bad_ipv4",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_SHORT_IPV6:   "short_ipv6",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_BAD_IPV6:     "bad_ipv6",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_IPV6EXT:      "ipv6_ext_chain",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_SHORT_L4:     "short_l4",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_BAD_TCP:      "bad_tcp",
	bpf.DatapathOvsbpfDropOVSBPF_DROP_BAD_ND:       "bad_nd",
}

// DropReason names a parser drop reason as dpif/show prints it.
func DropReason(r bpf.DatapathOvsbpfDrop) string {
	if s, ok := dropReasons[r]; ok {
		return s
	}
	return fmt.Sprintf("reason_%d", uint32(r))
}
