package datapath

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/require"
)

// What installing a new megaflow costs the handler that waits on it: the
// syscalls that write the action list and the flow, under the table lock.
func BenchmarkPutNewFlow(b *testing.B) {
	d := openTest(b, Config{})
	mask := maskOf(l2Switch...)
	acts := []Action{Output(2)}
	var i uint32
	for b.Loop() {
		k := keyFor(1)
		binary.BigEndian.PutUint32(k.EthDst[2:], i)
		i++
		_, err := d.PutFlow(mask, k, acts)
		require.NoError(b, err)
		if i%50000 == 0 {
			b.StopTimer()
			d.DeleteFlows()
			b.StartTimer()
		}
	}
}

// What reading 3,000 megaflows costs: the full dump with every CPU's
// counters (dpctl/dump-flows), and a revalidator sweep's read of last use.
func BenchmarkFlows3000(b *testing.B) {
	d := openTest(b, Config{})
	mask := maskOf(l2Switch...)
	for i := range uint32(3000) {
		k := keyFor(1)
		binary.BigEndian.PutUint32(k.EthDst[2:], i)
		_, err := d.PutFlow(mask, k, []Action{Output(2)})
		require.NoError(b, err)
	}
	b.Run("dump", func(b *testing.B) {
		for b.Loop() {
			fs, err := d.Flows()
			require.NoError(b, err)
			require.Len(b, fs, 3000)
		}
	})
	b.Run("sweep", func(b *testing.B) {
		var fs []Flow
		for b.Loop() {
			var err error
			fs, err = d.AppendFlowsLastUsed(fs[:0])
			require.NoError(b, err)
			require.Len(b, fs, 3000)
		}
	})
}
