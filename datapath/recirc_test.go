package datapath

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// onOneCPU keeps the test on one CPU until it ends, so that the per-CPU
// exact-match cache one test run fills is the one the next reads.
func onOneCPU(t *testing.T) {
	t.Helper()
	runtime.LockOSThread()
	var was, one unix.CPUSet
	require.NoError(t, unix.SchedGetaffinity(0, &was))
	for cpu := 0; cpu < 1024; cpu++ {
		if was.IsSet(cpu) {
			one.Set(cpu)
			break
		}
	}
	require.NoError(t, unix.SchedSetaffinity(0, &one))
	t.Cleanup(func() {
		unix.SchedSetaffinity(0, &was)
		runtime.UnlockOSThread()
	})
}

// chainIDs returns the recirc_ids of a chain of n passes: 0, then ids past
// 16 bits (0x12345678 and up), so that a datapath keeping only the low 16
// bits of a recirc_id would look up the wrong megaflows.
func chainIDs(n int) []uint32 {
	ids := make([]uint32, n)
	for i := 1; i < n; i++ {
		ids[i] = 0x12345678 + uint32(i) - 1
	}
	return ids
}

// putChain installs, for packets from inPort, a megaflow at each of ids
// that recirculates to the next and one at the last that outputs to out,
// and returns the last one's key.
func putChain(t *testing.T, d *Datapath, inPort uint16, ids []uint32, out uint16) Key {
	t.Helper()
	mask := maskOf(mInPort, mRecirc)
	for i, id := range ids {
		acts := []Action{Output(out)}
		if i+1 < len(ids) {
			acts = []Action{Recirc(ids[i+1])}
		}
		_, err := d.PutFlow(mask, Key{InPort: inPort, RecircId: id}, acts)
		require.NoError(t, err)
	}
	return Key{InPort: inPort, RecircId: ids[len(ids)-1]}
}

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

// A packet may take MaxPasses lookups, no more: a chain of 16 megaflows
// forwards, a chain of 17 is cut off at its 16th and counted.
func TestSixteenPasses(t *testing.T) {
	require.Equal(t, 16, MaxPasses)
	onOneCPU(t)
	d := openTest(t, Config{})
	mask := maskOf(mInPort, mRecirc)
	f := tcpFrame(t, 0)

	last16 := putChain(t, d, 1, chainIDs(MaxPasses), 2)
	r := run(t, d, f, ifVM1)
	require.Equal(t, uint32(VerdictRedirect), r.Verdict, "16 passes forward")
	c := counters(t, d)
	require.Equal(t, uint64(MaxPasses), c.MaskHits, "one lookup a pass")
	require.Zero(t, c.Misses)
	require.Zero(t, c.RecircLimit)
	require.Equal(t, uint64(1), flowPackets(t, d, mask, last16), "the 16th pass's megaflow forwarded it")

	// The same chain again: the exact-match cache answers every pass.
	require.Equal(t, uint32(VerdictRedirect), run(t, d, f, ifVM1).Verdict)
	require.Equal(t, uint64(MaxPasses), counters(t, d).EMCHits)

	last17 := putChain(t, d, 3, chainIDs(MaxPasses+1), 2)
	require.Equal(t, uint32(VerdictDrop), run(t, d, f, ifVM3).Verdict, "a 17th pass is one too many")
	c = counters(t, d)
	require.Equal(t, uint64(1), c.RecircLimit)
	require.Zero(t, c.Misses)
	require.Zero(t, flowPackets(t, d, mask, last17), "the 17th pass never ran")
	before := Key{InPort: 3, RecircId: chainIDs(MaxPasses + 1)[MaxPasses-1]}
	require.Equal(t, uint64(1), flowPackets(t, d, mask, before), "the 16th did")
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

// A packet the slow path delivers goes on from the pass where it missed:
// the recirc_id and conntrack fields of ExecMeta are laid over the key
// parsed from its frame, so the megaflows after a recirc see them.
func TestExecuteLaysMetaOverTheKey(t *testing.T) {
	const (
		missedAt = uint32(0x10000001) // the pass that missed
		next     = uint32(0x10000002) // where its actions recirculate to
		trk, est = uint8(0x20), uint8(0x02)
	)
	d := openTest(t, Config{})
	rd := upcallReader(t, d)
	x, err := d.NewExecutor()
	require.NoError(t, err)
	defer x.Close()
	f := tcpFrame(t, 0)

	// At next: +trk+est with ct_mark 5 outputs to port 2.
	mask := maskOf(mInPort, mRecirc)
	mask.CtState, mask.CtMark = trk|est, 0xffffffff
	want := Key{InPort: 1, RecircId: next, CtState: trk | est, CtMark: 5}
	_, err = d.PutFlow(mask, want, []Action{Output(2)})
	require.NoError(t, err)

	label := [16]byte{0: 0xab, 15: 0xcd}
	meta := ExecMeta{RecircID: missedAt, CTState: trk | est, CTZone: 7, CTMark: 5, CTLabel: label}
	require.NoError(t, x.Execute(f, ifVM1, meta, []Action{Recirc(next)}))
	c := counters(t, d)
	require.Equal(t, uint64(1), c.MaskHits, "the pass after the delivered one hit")
	require.Zero(t, c.Misses)
	require.Equal(t, uint64(1), flowPackets(t, d, mask, want))

	// Without the metadata the packet is one at its first pass, with no
	// conntrack state: it misses at next.
	require.NoError(t, x.Execute(f, ifVM1, ExecMeta{}, []Action{Recirc(next)}))
	require.Equal(t, uint64(1), counters(t, d).Misses)
	u := readUpcall(t, rd)
	require.Equal(t, next, u.Key.N.RecircId)
	require.Zero(t, u.Key.N.CtState)
	require.Equal(t, uint64(1), flowPackets(t, d, mask, want), "the megaflow saw no second packet")

	// Another mark misses too, and the upcall carries every field of the
	// metadata: the key as the pass saw it.
	other := meta
	other.CTMark = 6
	require.NoError(t, x.Execute(f, ifVM1, other, []Action{Recirc(next)}))
	require.Equal(t, uint64(2), counters(t, d).Misses)
	u = readUpcall(t, rd)
	require.Equal(t, ExecMeta{RecircID: next, CTState: trk | est, CTZone: 7, CTMark: 6, CTLabel: label}, ExecMetaOf(&u.Key))

	// The delivered actions themselves run with the pass's recirc_id: a
	// userspace action reports it.
	require.NoError(t, x.Execute(f, ifVM1, meta, []Action{Userspace()}))
	u = readUpcall(t, rd)
	require.Equal(t, UpcallAction, u.Reason)
	require.Equal(t, meta, ExecMetaOf(&u.Key))

	// An ARP key holds arp_tha where the conntrack zone and mark are: the
	// metadata leaves those bytes as the frame has them.
	arp := arpRequest(t)
	require.NoError(t, x.Execute(arp, ifVM1, meta, []Action{Userspace()}))
	u = readUpcall(t, rd)
	k := u.Key.Narrow()
	require.Equal(t, arp[32:38], []byte(k.ARPTHA()), "tha as in the frame")
	require.Equal(t, missedAt, u.Key.N.RecircId)
	require.Equal(t, ExecMeta{RecircID: missedAt, CTState: trk | est, CTLabel: label}, ExecMetaOf(&u.Key))
}

// The delivered list counts as a pass: it and the lookups after it make
// at most MaxPasses, as on the fast path.
func TestExecuteCountsPasses(t *testing.T) {
	d := openTest(t, Config{})
	x, err := d.NewExecutor()
	require.NoError(t, err)
	defer x.Close()
	mask := maskOf(mInPort, mRecirc)
	ids := chainIDs(MaxPasses)
	last := putChain(t, d, 1, ids, 2)
	f := tcpFrame(t, 0)

	// The list of the first pass, then 15 lookups.
	require.NoError(t, x.Execute(f, ifVM1, ExecMeta{}, []Action{Recirc(ids[1])}))
	require.Equal(t, uint64(1), flowPackets(t, d, mask, last))
	require.Zero(t, counters(t, d).RecircLimit)

	// A list before the first pass's: 17 in all.
	require.NoError(t, x.Execute(f, ifVM1, ExecMeta{}, []Action{Recirc(0)}))
	require.Equal(t, uint64(1), counters(t, d).RecircLimit)
	require.Equal(t, uint64(1), flowPackets(t, d, mask, last))
}
