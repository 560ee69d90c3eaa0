package datapath

import (
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/cilium/ebpf"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// clock converts the jiffies flow statistics hold into wall time. The
// kernel's tick rate (HZ) is not visible to user space, so it is measured:
// two readings of jiffies and the monotonic clock at least calibrateFor
// apart, snapped to the rates kernels are built with.
type clock struct {
	mu    sync.Mutex
	first *bpf.DatapathOvsbpfClock
	nsPer float64 // nanoseconds per jiffy, 0 until calibrated
}

const calibrateFor = 60 * time.Millisecond

// kernelHZ are the CONFIG_HZ choices.
var kernelHZ = []float64{100, 250, 300, 1000}

func readClock(prog *ebpf.Program, m *ebpf.Map) (bpf.DatapathOvsbpfClock, error) {
	var c bpf.DatapathOvsbpfClock
	if _, err := prog.Run(&ebpf.RunOptions{Data: make([]byte, 14)}); err != nil {
		return c, fmt.Errorf("reading the datapath clock: %w", err)
	}
	if err := m.Lookup(uint32(0), &c); err != nil {
		return c, fmt.Errorf("reading the datapath clock: %w", err)
	}
	return c, nil
}

// converter returns a function from jiffies to wall time, calibrating the
// clock first if it has not been (which may take calibrateFor).
func (c *clock) converter(prog *ebpf.Program, m *ebpf.Map) (func(uint64) time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now, err := readClock(prog, m)
	if err != nil {
		return nil, err
	}
	if c.nsPer == 0 {
		if c.first == nil {
			first := now
			c.first = &first
		}
		elapsed := time.Duration(now.MonoNs - c.first.MonoNs)
		if elapsed < calibrateFor {
			time.Sleep(calibrateFor - elapsed)
			if now, err = readClock(prog, m); err != nil {
				return nil, err
			}
		}
		hz := float64(now.Jiffies-c.first.Jiffies) / (float64(now.MonoNs-c.first.MonoNs) / 1e9)
		best := kernelHZ[0]
		for _, h := range kernelHZ {
			if math.Abs(h-hz) < math.Abs(best-hz) {
				best = h
			}
		}
		c.nsPer = 1e9 / best
	}
	wall := time.Now()
	return func(j uint64) time.Time {
		if j > now.Jiffies {
			return wall
		}
		return wall.Add(-time.Duration(float64(now.Jiffies-j) * c.nsPer))
	}, nil
}

// start takes the first calibration reading, so that the first dump
// after Open rarely has to wait.
func (c *clock) start(prog *ebpf.Program, m *ebpf.Map) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if first, err := readClock(prog, m); err == nil {
		c.first = &first
	}
}
