// Command datapathbench measures the eBPF datapath for make bench-datapath:
// per-packet cost under BPF_PROG_TEST_RUN beside an empty program (with
// 100,000 flows cycling, and -mode flood a broadcast to 64 ports), and
// (-mode upcalls) the slow path's latency and rate on a running ovsbpfd,
// and (-mode stalls) the machine's own scheduling noise, the floor under
// the slow path's tail.
// It prints one "name value" line per figure. It needs root.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

// maxFlows is -max-flows, the flow table size of the datapaths measured.
var maxFlows int

func main() {
	mode := flag.String("mode", "micro", "micro: per-packet figures; flood: a broadcast cached to 64 ports (in a namespace with veths f1..f64); upcalls: slow-path figures on a running ovsbpfd; stalls: how often a running thread loses its CPU here")
	stallTime := flag.Duration("stall-time", 3*time.Second, "stalls: how long to watch")
	var uo upcallOpts
	flag.StringVar(&uo.ctl, "ctl", "/var/run/ovsbpf/ovsbpfd.ctl", "upcalls: ovsbpfd's control socket")
	flag.StringVar(&uo.netns, "netns", "", "upcalls: the VM namespace to send from")
	flag.StringVar(&uo.iface, "iface", "eth0", "upcalls: the VM's interface")
	flag.IntVar(&uo.paced, "paced", 3000, "upcalls: new flows sent paced, for latency (the percentiles are over the last 4,096)")
	flag.IntVar(&uo.pacedRate, "paced-rate", 1000, "upcalls: their rate, per second")
	flag.IntVar(&uo.burst, "burst", 20000, "upcalls: new flows sent at once, for rate")
	flag.IntVar(&maxFlows, "max-flows", 0, "micro, flood: the datapath's flow table size (0: its default)")
	flag.Parse()
	out := func(name string, v float64) { fmt.Printf("%s %.2f\n", name, v) }
	var err error
	switch *mode {
	case "micro":
		err = micro(out)
	case "flood":
		err = flood(out)
	case "upcalls":
		err = upcalls(uo, out)
	case "stalls":
		stalls(*stallTime, out)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "datapathbench:", err)
		os.Exit(1)
	}
}
