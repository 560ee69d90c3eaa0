package datapath

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// flowPackets returns the packets counted on the megaflow with key under
// mask.
func flowPackets(t *testing.T, d *Datapath, mask Mask, key Key) uint64 {
	t.Helper()
	fs, err := d.Flows()
	require.NoError(t, err)
	k := key.And(&mask)
	for _, f := range fs {
		if f.Mask == mask && f.Key == k {
			return f.Stats.Packets
		}
	}
	t.Fatalf("no megaflow %s", FormatFlow(&k, &mask))
	return 0
}

// A recirc_id is 32 bits all the way: matched whole, carried whole to user
// space on a miss.
func TestRecircIDsPastSixteenBits(t *testing.T) {
	d := openTest(t, Config{})
	rd := upcallReader(t, d)
	mask := maskOf(mInPort, mRecirc)
	f := tcpFrame(t, 0)

	_, err := d.PutFlow(mask, Key{InPort: 1}, []Action{Recirc(0x12345678)})
	require.NoError(t, err)
	// A megaflow at the id's low 16 bits must not catch it.
	_, err = d.PutFlow(mask, Key{InPort: 1, RecircId: 0x5678}, []Action{Output(3)})
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictDrop), run(t, d, f, ifVM1).Verdict)
	u := readUpcall(t, rd)
	require.Equal(t, UpcallMiss, u.Reason)
	require.Equal(t, uint32(0x12345678), u.Key.N.RecircId)
	k := u.Key.Narrow()
	require.Contains(t, k.String(), "recirc_id(0x12345678),in_port(1),")

	_, err = d.PutFlow(mask, Key{InPort: 1, RecircId: 0x12345678}, []Action{Output(2)})
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictRedirect), run(t, d, f, ifVM1).Verdict)
	require.Equal(t, uint64(1), flowPackets(t, d, mask, Key{InPort: 1, RecircId: 0x12345678}))
	require.Zero(t, flowPackets(t, d, mask, Key{InPort: 1, RecircId: 0x5678}))
	require.Equal(t, "recirc_id(0x12345678),in_port(1)", FormatFlow(&Key{InPort: 1, RecircId: 0x12345678}, &mask))
}
