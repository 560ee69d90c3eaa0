package main

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/ovsbpf/ovsbpf/bpf/testprogs"
	"github.com/ovsbpf/ovsbpf/datapath"
)

// hit_100k_flows_ns: the per-packet cost when 100,000 distinct TCP
// 5-tuples cycle through the megaflows of a logical switch with ACLs, more
// than the exact-match cache's 4,096 slots a CPU hold, so most packets pay
// the tuple-space search (Open vSwitch's EMC-thrashing case).
//
// The masks are the shapes ovsbpf's slow path installs for the
// differential suite's "acls" and "port-security" topologies (a real
// ovn-northd's logical flows, decided by the chassis pipeline and
// upcall.CacheEntry, as TestMegaflowSoundness derives them):
//
//	0. recirc_id, in_port, eth_src, vlan: port security drops a source
//	   MAC the port does not own;
//	1. + eth_dst, eth_type: switching, broadcasts and floods;
//	2. + ipv4 src: IPv4 port security;
//	3. + ct_state(-trk), ipv4 proto and frag, the L4 destination: an
//	   allow-stateless ACL on the destination port, as the suite's
//	   "udp.dst == 123" gives (there without ipv4 src, which IPv4 port
//	   security adds, as the port-security topology's UDP flows show; it
//	   keeps this mask's flows apart from mask 2's). (A stateful ACL goes through ct, which stays
//	   in the slow path until eBPF conntrack exists, so it is not cached
//	   today.) Here it allows tcp.dst == 80 and 443.
//
// Each mask holds a flow of its own (an unknown source MAC, a broadcast,
// another source address) and the cycled tuples hit the mask installed
// last, slot 3, which a fresh datapath searches last: four probes a
// packet, the worst order (hit_100k_flows_worst_order). Then the masks are
// ranked by hits, as every revalidator sweep in ovsbpfd does, and the
// busy mask is searched first: one probe (hit_100k_flows). The 100,000 tuples are one client's source ports 1024..51023 to
// the server's ports 80 and 443, so two megaflows carry them all, as in
// OVS.
//
// BPF_PROG_TEST_RUN repeats one frame, so a harness program
// (bpf/benchcycle.c) rewrites the TCP ports for each repeat and tail-calls
// the datapath. Its own cost, measured by tail-calling an empty program
// instead, is taken out: hit_100k_flows_ns = t(harness → datapath) −
// t(harness → empty) + t(empty), each round's own, and the median of the
// rounds; the ratio is the median of each round's ratio to its empty run.

const (
	scaleSports  = 50_000
	scaleDports  = 2
	scaleRepeat  = 1_000_000 // ten passes over the 100,000 tuples
	scaleMasks   = 4
	scaleRounds  = 9
	scaleTuples  = scaleSports * scaleDports
	scaleFlowMAC = 0x77
)

// frameTCP64 is a 64-byte Ethernet/IPv4/TCP frame from 10.0.0.1 to
// 10.0.0.2 (ports set by the harness).
func frameTCP64() []byte {
	f := frame64()
	ip := f[14:]
	ip[9] = 6
	setIPv4Checksum(ip)
	tcp := ip[20:]
	clear(tcp)
	tcp[12] = 5 << 4 // data offset
	tcp[13] = 0x10   // ACK
	return f
}

func loadACLSwitch() (*datapath.Datapath, error) {
	d, err := openTwoPorts(datapath.Config{MaxFlows: maxFlows})
	if err != nil {
		return nil, err
	}
	k := frameKey()
	k.NwProto = 6
	ones6 := [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	var m [scaleMasks]datapath.Mask
	m[0].InPort, m[0].RecircId, m[0].EthSrc, m[0].VlanTci = 0xffff, 0xffffffff, ones6, 0xffff
	m[1] = m[0]
	m[1].EthDst, m[1].EthType = ones6, 0xffff
	m[2] = m[1]
	m[2].SetIPv4Src(netip.MustParseAddr("255.255.255.255"))
	m[3] = m[2]
	m[3].CtState = 0x20 // trk
	m[3].NwProto, m[3].NwFrag, m[3].TpDst = 0xff, 0xff, 0xffff
	other := func(f func(*datapath.Key)) datapath.Key { o := k; f(&o); return o }
	flows := []struct {
		mask int
		key  datapath.Key
		acts []datapath.Action
	}{
		{0, other(func(o *datapath.Key) { o.EthSrc = [6]byte{0x0a, 0, 0, 0, 0x0e, 0xee} }), nil},
		{1, other(func(o *datapath.Key) { o.EthDst = ones6 }), []datapath.Action{datapath.Output(2)}},
		{2, other(func(o *datapath.Key) { o.SetIPv4Src(netip.MustParseAddr("10.0.0.99")) }), nil},
		{3, other(func(o *datapath.Key) { o.SetL4Dst(80) }), []datapath.Action{datapath.Output(2)}},
		{3, other(func(o *datapath.Key) { o.SetL4Dst(443) }), []datapath.Action{datapath.Output(2)}},
	}
	for _, f := range flows {
		if _, err := d.PutFlow(m[f.mask], f.key, f.acts); err != nil {
			d.Close()
			return nil, fmt.Errorf("installing a flow under mask %d: %w", f.mask, err)
		}
	}
	return d, nil
}

// loadCycle loads the harness with target as its tail-call target.
func loadCycle(target *ebpf.Program) (*testprogs.BenchCycleObjects, error) {
	spec, err := testprogs.LoadBenchCycle()
	if err != nil {
		return nil, err
	}
	if err := spec.Variables["sports"].Set(uint32(scaleSports)); err != nil {
		return nil, err
	}
	if err := spec.Variables["ndports"].Set(uint32(scaleDports)); err != nil {
		return nil, err
	}
	var o testprogs.BenchCycleObjects
	if err := spec.LoadAndAssign(&o, nil); err != nil {
		return nil, fmt.Errorf("loading the tuple-cycling harness: %w", err)
	}
	if err := o.Target.Update(uint32(0), target, ebpf.UpdateAny); err != nil {
		o.Close()
		return nil, fmt.Errorf("pointing the harness at %s: %w", target, err)
	}
	return &o, nil
}

// scale prints hit_100k_flows_ns and its ratio to the empty program, with
// the exact-match cache's hit rate over the run.
func scale(empty *ebpf.Program, out func(name string, v float64)) error {
	d, err := loadACLSwitch()
	if err != nil {
		return err
	}
	defer d.Close()
	toDP, err := loadCycle(d.IngressProgram())
	if err != nil {
		return err
	}
	defer toDP.Close()
	toEmpty, err := loadCycle(empty)
	if err != nil {
		return err
	}
	defer toEmpty.Close()
	f := frameTCP64()
	// Each round times the empty program, the harness alone and the
	// harness with the datapath back to back, and the figure is the
	// median over rounds of each round's own difference: the machine's
	// load drifts between rounds more than within one. probesPerHit is
	// what every lookup of the phase must have cost.
	measure := func(name string, probesPerHit uint64) error {
		before, err := d.Counters()
		if err != nil {
			return err
		}
		var per, harness, empties []float64
		for r := 0; r < scaleRounds; r++ {
			var t [3]float64
			for i, p := range []*ebpf.Program{empty, toEmpty.Cycle, toDP.Cycle} {
				d, ret, err := datapath.BenchmarkProgram(p, f, ifIn, scaleRepeat)
				if err != nil {
					return err
				}
				if p == toDP.Cycle && ret != datapath.VerdictRedirect {
					return fmt.Errorf("%s: the frame was not forwarded (verdict %d)", name, ret)
				}
				t[i] = ns(d)
			}
			empties = append(empties, t[0])
			harness = append(harness, t[1]-t[0])
			per = append(per, t[2]-t[1]+t[0])
		}
		after, err := d.Counters()
		if err != nil {
			return err
		}
		hits, probes := after.MaskHits-before.MaskHits, after.MaskProbes-before.MaskProbes
		if after.Misses != before.Misses || hits == 0 || probes != probesPerHit*hits {
			return fmt.Errorf("%s: want every lookup a hit after %d probes: %d hits, %d probes, %d misses",
				name, probesPerHit, hits, probes, after.Misses-before.Misses)
		}
		ratios := make([]float64, len(per))
		for i := range per {
			ratios[i] = per[i] / empties[i]
		}
		out(name+"_ns", median(per))
		out(name+"_x_empty", median(ratios))
		out(name+"_harness_ns", median(harness))
		out(name+"_emc_hit_pct", 100*float64(after.EMCHits-before.EMCHits)/float64(after.Lookups()-before.Lookups()))
		return nil
	}
	// First with the cycled flows under the mask searched last, as a
	// fresh datapath has them; then as ovsbpfd runs, once a revalidator
	// sweep (ReorderMasks) has put the busiest mask first.
	if err := measure("hit_100k_flows_worst_order", scaleMasks); err != nil {
		return err
	}
	if err := d.ReorderMasks(); err != nil {
		return err
	}
	return measure("hit_100k_flows", 1)
}
