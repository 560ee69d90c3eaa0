package main

import (
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"time"

	"github.com/ovsbpf/ovsbpf/bpf/testprogs"
	"github.com/ovsbpf/ovsbpf/datapath"
)

// The per-packet figures: BPF_PROG_TEST_RUN on a 64-byte UDP frame, every
// program timed the same way (datapath.BenchmarkProgram) and interleaved
// over several rounds, each figure the median of its rounds.

const (
	benchRepeat = 2_000_000
	benchRounds = 5
	ifIn, ifOut = 101, 102 // no such interfaces are needed: nothing is sent
)

// frame64 is a 64-byte Ethernet/IPv4/UDP frame (without FCS) from port 1.
func frame64() []byte {
	f := make([]byte, 64)
	copy(f[0:6], []byte{0x0a, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{0x0a, 0, 0, 0, 0, 1})
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0], ip[2], ip[3], ip[8], ip[9] = 0x45, 0, 50, 64, 17
	copy(ip[12:16], []byte{10, 0, 0, 1})
	copy(ip[16:20], []byte{10, 0, 0, 2})
	setIPv4Checksum(ip)
	udp := ip[20:]
	udp[0], udp[1], udp[2], udp[3], udp[4], udp[5] = 0x13, 0x88, 0x00, 0x35, 0, 30
	return f
}

// setIPv4Checksum fills in the checksum of the IPv4 header ip starts with.
func setIPv4Checksum(ip []byte) {
	ip[10], ip[11] = 0, 0
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(ip[i])<<8 | uint32(ip[i+1])
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	ip[10], ip[11] = byte(^sum>>8), byte(^sum)
}

// openTwoPorts opens a datapath with ports 1 (in) and 2 (out, a peer) on
// the interface indexes BPF_PROG_TEST_RUN is told about.
func openTwoPorts(cfg datapath.Config) (*datapath.Datapath, error) {
	d, err := datapath.Open(cfg)
	if err != nil {
		return nil, err
	}
	for _, p := range []datapath.Port{{No: 1, Ifindex: ifIn, Name: "in"}, {No: 2, Ifindex: ifOut, Name: "out", Peer: true}} {
		if err := d.SetPort(p); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// frameKey is the key of frame64's headers up to the IPv4 addresses, from
// port 1.
func frameKey() datapath.Key {
	var k datapath.Key
	k.InPort = 1
	k.EthDst = [6]byte{0x0a, 0, 0, 0, 0, 2}
	k.EthSrc = [6]byte{0x0a, 0, 0, 0, 0, 1}
	k.SetEtherType(datapath.EthTypeIPv4)
	k.SetIPv4Src(netip.MustParseAddr("10.0.0.1"))
	k.SetIPv4Dst(netip.MustParseAddr("10.0.0.2"))
	return k
}

// loadWithMasks opens a datapath with n masks installed, each with one
// megaflow, the frame's own in the last slot searched.
func loadWithMasks(n int, emc bool) (*datapath.Datapath, error) {
	d, err := openTwoPorts(datapath.Config{DisableEMC: !emc, MaxFlows: maxFlows})
	if err != nil {
		return nil, err
	}
	k := frameKey()
	k.NwProto, k.NwTtl = 17, 64
	k.SetL4Src(5000)
	k.SetL4Dst(53)
	for i := 0; i < n; i++ {
		// Mask i keeps in_port, recirc_id, eth_dst and the top i+1
		// bits of the IPv4 destination: every mask differs.
		var m datapath.Mask
		m.InPort, m.RecircId, m.EthDst, m.EthType = 0xffff, 0xffffffff, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0xffff
		m.SetIPv4Dst(netip.AddrFrom4([4]byte(prefixMask(i + 1))))
		key := k
		if i < n-1 {
			key.EthDst[5] = 0x77 // a flow under this mask, not the frame's
		}
		if _, err := d.PutFlow(m, key, []datapath.Action{datapath.Output(2)}); err != nil {
			d.Close()
			return nil, fmt.Errorf("installing mask %d: %w", i, err)
		}
	}
	return d, nil
}

func prefixMask(bits int) []byte {
	m := make([]byte, 4)
	for i := 0; i < bits && i < 32; i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	return m
}

type microCase struct {
	name  string
	masks int
	emc   bool
}

var microCases = []microCase{
	{"cache_hit_1mask_ns", 1, true}, {"cache_hit_8mask_ns", 8, true}, {"cache_hit_32mask_ns", 32, true},
	{"tss_1mask_ns", 1, false}, {"tss_8mask_ns", 8, false}, {"tss_32mask_ns", 32, false},
}

// micro prints the per-packet figures.
func micro(out func(name string, v float64)) error {
	var empty testprogs.HashCostObjects
	if err := testprogs.LoadHashCostObjects(&empty, nil); err != nil {
		return fmt.Errorf("loading the empty program: %w", err)
	}
	defer empty.Close()
	dps := make([]*datapath.Datapath, len(microCases))
	for i, c := range microCases {
		d, err := loadWithMasks(c.masks, c.emc)
		if err != nil {
			return err
		}
		defer d.Close()
		dps[i] = d
	}
	f := frame64()
	samples := map[string][]float64{}
	for r := 0; r < benchRounds; r++ {
		d, ret, err := datapath.BenchmarkProgram(empty.Empty, f, ifIn, benchRepeat)
		if err != nil {
			return err
		}
		_ = ret
		samples["empty_prog_ns"] = append(samples["empty_prog_ns"], ns(d))
		for i, c := range microCases {
			d, ret, err := dps[i].Benchmark(f, ifIn, benchRepeat)
			if err != nil {
				return err
			}
			if ret != datapath.VerdictRedirect && os.Getenv("OVSBPF_BENCH_NOCHECK") == "" {
				return fmt.Errorf("%s: the frame was not forwarded (verdict %d)", c.name, ret)
			}
			samples[c.name] = append(samples[c.name], ns(d))
		}
	}
	for i, c := range microCases {
		if os.Getenv("OVSBPF_BENCH_NOCHECK") != "" {
			break // experiments with truncated programs
		}
		cnt, err := dps[i].Counters()
		if err != nil {
			return err
		}
		// The first lookup on each CPU fills that CPU's cache.
		if c.emc && cnt.EMCHits+uint64(runtime.NumCPU()) < cnt.Lookups() {
			return fmt.Errorf("%s: only %d of %d lookups hit the exact-match cache", c.name, cnt.EMCHits, cnt.Lookups())
		}
		if !c.emc && cnt.MaskProbes != uint64(c.masks)*cnt.MaskHits {
			return fmt.Errorf("%s: %d mask probes for %d hits, want %d each", c.name, cnt.MaskProbes, cnt.MaskHits, c.masks)
		}
	}
	emptyNs := median(samples["empty_prog_ns"])
	out("empty_prog_ns", emptyNs)
	for _, c := range microCases {
		v := median(samples[c.name])
		out(c.name, v)
		out(c.name[:len(c.name)-3]+"_x_empty", v/emptyNs)
	}
	return scale(empty.Empty, out)
}

func ns(d time.Duration) float64 { return float64(d.Nanoseconds()) }

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
