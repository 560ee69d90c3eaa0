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

// What a revalidator sweep's dump of 3,000 megaflows with their
// statistics costs.
func BenchmarkFlows3000(b *testing.B) {
	d := openTest(b, Config{})
	mask := maskOf(l2Switch...)
	for i := range uint32(3000) {
		k := keyFor(1)
		binary.BigEndian.PutUint32(k.EthDst[2:], i)
		_, err := d.PutFlow(mask, k, []Action{Output(2)})
		require.NoError(b, err)
	}
	for b.Loop() {
		fs, err := d.UnorderedFlows()
		require.NoError(b, err)
		require.Len(b, fs, 3000)
	}
}
