// Command datapathbench measures the eBPF datapath for make bench-datapath:
// per-packet cost under BPF_PROG_TEST_RUN beside an empty program, and
// (with -upcalls) the slow path's latency and rate on a running ovsbpfd.
// It prints one "name value" line per figure. It needs root.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	mode := flag.String("mode", "micro", "micro: per-packet figures; upcalls: slow-path figures on a running ovsbpfd")
	var uo upcallOpts
	flag.StringVar(&uo.ctl, "ctl", "/var/run/ovsbpf/ovsbpfd.ctl", "upcalls: ovsbpfd's control socket")
	flag.StringVar(&uo.netns, "netns", "", "upcalls: the VM namespace to send from")
	flag.StringVar(&uo.iface, "iface", "eth0", "upcalls: the VM's interface")
	flag.IntVar(&uo.paced, "paced", 1000, "upcalls: new flows sent paced, for latency")
	flag.IntVar(&uo.pacedRate, "paced-rate", 1000, "upcalls: their rate, per second")
	flag.IntVar(&uo.burst, "burst", 20000, "upcalls: new flows sent at once, for rate")
	flag.Parse()
	out := func(name string, v float64) { fmt.Printf("%s %.2f\n", name, v) }
	var err error
	switch *mode {
	case "micro":
		err = micro(out)
	case "upcalls":
		err = upcalls(uo, out)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "datapathbench:", err)
		os.Exit(1)
	}
}
