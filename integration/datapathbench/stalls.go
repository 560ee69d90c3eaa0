package main

import (
	"runtime"
	"strconv"
	"time"
)

// stalls measures the machine's own noise, the floor under any tail
// latency: a thread that never sleeps reads the clock in a loop for d, and
// every gap between two readings longer than a few microseconds is time
// it lost its CPU (interrupts, other tasks, on a VM the host). A handler
// that meets such a stall while it holds an upcall adds it to that
// upcall's latency, whatever the slow path does.
func stalls(d time.Duration, out func(string, float64)) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	thresholds := []time.Duration{20 * time.Microsecond, 50 * time.Microsecond, 100 * time.Microsecond}
	counts := make([]int, len(thresholds))
	var lost, longest time.Duration
	start := time.Now()
	last := start
	for {
		now := time.Now()
		gap := now.Sub(last)
		last = now
		if gap > 5*time.Microsecond {
			lost += gap
			longest = max(longest, gap)
			for i, t := range thresholds {
				if gap > t {
					counts[i]++
				}
			}
		}
		if now.Sub(start) > d {
			break
		}
	}
	secs := time.Since(start).Seconds()
	for i, t := range thresholds {
		out("cpu_stalls_over_"+strconv.Itoa(int(t/time.Microsecond))+"us_per_s", float64(counts[i])/secs)
	}
	out("cpu_stalled_pct", 100*lost.Seconds()/secs)
	out("cpu_stall_max_us", float64(longest)/float64(time.Microsecond))
}
