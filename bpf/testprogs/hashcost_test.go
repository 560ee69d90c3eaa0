package testprogs

import (
	"fmt"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"
)

const tcActOK = 0 // TC_ACT_OK

// loadHashCost loads the hashcost programs with every map holding 10,000
// keys, among them the ones the programs look up.
func loadHashCost(t testing.TB) *HashCostObjects {
	t.Helper()
	var objs HashCostObjects
	require.NoError(t, LoadHashCostObjects(&objs, nil), "loading hashcost (needs root and eBPF)")
	t.Cleanup(func() { objs.Close() })
	for _, m := range []struct {
		size int
		m    *ebpf.Map
	}{{48, objs.Keys48}, {64, objs.Keys64}, {96, objs.Keys96}, {144, objs.Keys144}} {
		for i := 0; i < 10000; i++ {
			k := make([]byte, m.size)
			if i >= 8 { // keys 0..7 are the ones looked up: byte 0 only
				k[0], k[1], k[m.size-1] = byte(i), byte(i>>8), 1
			} else {
				k[0] = byte(i)
			}
			require.NoError(t, m.m.Put(k, uint64(1)))
		}
	}
	return &objs
}

func hashCostPrograms(objs *HashCostObjects) []struct {
	name string
	prog *ebpf.Program
} {
	return []struct {
		name string
		prog *ebpf.Program
	}{
		{"empty", objs.Empty},
		{"48Bx1", objs.Lookup48x1}, {"48Bx8", objs.Lookup48x8},
		{"64Bx1", objs.Lookup64x1}, {"64Bx8", objs.Lookup64x8},
		{"96Bx1", objs.Lookup96x1}, {"96Bx8", objs.Lookup96x8},
		{"144Bx1", objs.Lookup144x1}, {"144Bx8", objs.Lookup144x8},
	}
}

// Every lookup program finds its keys: what the benchmark times is hits.
func TestHashCostProgramsHit(t *testing.T) {
	objs := loadHashCost(t)
	pkt := make([]byte, 64)
	for _, p := range hashCostPrograms(objs) {
		t.Run(p.name, func(t *testing.T) {
			ret, err := p.prog.Run(&ebpf.RunOptions{Data: pkt})
			require.NoError(t, err)
			require.Equal(t, uint32(tcActOK), ret)
		})
	}
}

// BenchmarkHashCost reports the time of each program per run (ns/op),
// measured by BPF_PROG_TEST_RUN in the kernel on a 64-byte frame.
//
//	go test -run '^$' -bench HashCost ./bpf
func BenchmarkHashCost(b *testing.B) {
	objs := loadHashCost(b)
	pkt := make([]byte, 64)
	for _, p := range hashCostPrograms(objs) {
		b.Run(p.name, func(b *testing.B) {
			var total time.Duration
			for n := b.N; n > 0; {
				chunk := min(n, 1_000_000)
				_, d, err := p.prog.Benchmark(pkt, chunk, nil)
				if err != nil {
					b.Fatal(fmt.Errorf("BPF_PROG_TEST_RUN %s: %w", p.name, err))
				}
				total += d * time.Duration(chunk)
				n -= chunk
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "kernel-ns/op")
		})
	}
}
