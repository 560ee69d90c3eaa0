package main

import (
	"fmt"
	"net"

	"github.com/ovsbpf/ovsbpf/bpf/testprogs"
	"github.com/ovsbpf/ovsbpf/datapath"
)

// flood_64port_ns: a broadcast cached to 64 ports, per packet, under
// BPF_PROG_TEST_RUN. The outputs are real: 63 clones go out of veth
// interfaces f1..f64 (their peers g1..g64 in the same namespace receive
// and drop them), and the 64th is the redirect the test run reports. So
// the figure includes each clone's transmit and, as far as it runs in the
// same time, its receipt on the peer. The script runs this mode inside a
// namespace it made with those veths.
//
// Beside it: cache_hit_1port_ns (the same frame cached to one port, no
// clone) and flood_per_output_ns = (flood_64port_ns − cache_hit_1port_ns)
// / 63, the cost of one more port in a flood.

const (
	floodPorts  = 64
	floodRepeat = 20_000 // 1.26 million clones a round
	floodRounds = 5
)

func flood(out func(name string, v float64)) error {
	var empty testprogs.HashCostObjects
	if err := testprogs.LoadHashCostObjects(&empty, nil); err != nil {
		return fmt.Errorf("loading the empty program: %w", err)
	}
	defer empty.Close()
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return err
	}
	open := func(outputs int) (*datapath.Datapath, error) {
		d, err := datapath.Open(datapath.Config{MaxFlows: maxFlows})
		if err != nil {
			return nil, err
		}
		if err := d.SetPort(datapath.Port{No: 1, Ifindex: uint32(lo.Index), Name: "lo"}); err != nil {
			d.Close()
			return nil, err
		}
		var acts []datapath.Action
		for i := 1; i <= outputs; i++ {
			ifi, err := net.InterfaceByName(fmt.Sprintf("f%d", i))
			if err != nil {
				d.Close()
				return nil, fmt.Errorf("flood mode runs in a namespace with veths f1..f%d: %w", floodPorts, err)
			}
			no := uint16(i + 1)
			if err := d.SetPort(datapath.Port{No: no, Ifindex: uint32(ifi.Index), Name: ifi.Name, Peer: true}); err != nil {
				d.Close()
				return nil, err
			}
			acts = append(acts, datapath.Output(no))
		}
		var k datapath.Key
		k.InPort = 1
		k.EthDst = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		var m datapath.Mask
		m.InPort, m.RecircId, m.EthDst = 0xffff, 0xffffffff, [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
		if _, err := d.PutFlow(m, k, acts); err != nil {
			d.Close()
			return nil, err
		}
		return d, nil
	}
	one, err := open(1)
	if err != nil {
		return err
	}
	defer one.Close()
	all, err := open(floodPorts)
	if err != nil {
		return err
	}
	defer all.Close()
	f := frame64()
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	samples := map[string][]float64{}
	for r := 0; r < floodRounds; r++ {
		t, _, err := datapath.BenchmarkProgram(empty.Empty, f, uint32(lo.Index), floodRepeat)
		if err != nil {
			return err
		}
		samples["empty"] = append(samples["empty"], ns(t))
		for _, c := range []struct {
			name string
			d    *datapath.Datapath
		}{{"one", one}, {"all", all}} {
			t, ret, err := c.d.Benchmark(f, uint32(lo.Index), floodRepeat)
			if err != nil {
				return err
			}
			if ret != datapath.VerdictRedirect {
				return fmt.Errorf("flood: the frame was not forwarded (verdict %d)", ret)
			}
			samples[c.name] = append(samples[c.name], ns(t))
		}
	}
	cnt, err := all.Counters()
	if err != nil {
		return err
	}
	if cnt.ActionErrors != 0 || cnt.Misses != 0 {
		return fmt.Errorf("flood: %d action errors, %d misses", cnt.ActionErrors, cnt.Misses)
	}
	emptyNs, oneNs, allNs := median(samples["empty"]), median(samples["one"]), median(samples["all"])
	out("flood_empty_prog_ns", emptyNs)
	out("cache_hit_1port_ns", oneNs)
	out("flood_64port_ns", allNs)
	out("flood_per_output_ns", (allNs-oneNs)/(floodPorts-1))
	out("flood_64port_x_empty", allNs/emptyNs)
	return nil
}
