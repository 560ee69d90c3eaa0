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
	flag.Parse()
	out := func(name string, v float64) { fmt.Printf("%s %.2f\n", name, v) }
	var err error
	switch *mode {
	case "micro":
		err = micro(out)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "datapathbench:", err)
		os.Exit(1)
	}
}
