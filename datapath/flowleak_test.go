package datapath

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// readOnly makes the datapath's handle on one map read-only until the
// returned function runs: it pins the map, opens the pin with a read-only
// file descriptor, and puts that in the map's place. The kernel then
// refuses every update and delete through it with EPERM, so the flow
// table meets a real failed map write at that point of an install.
func readOnly(t *testing.T, d *Datapath, m **ebpf.Map) func() {
	t.Helper()
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("ovsbpf-leaktest-%d", os.Getpid()))
	require.NoError(t, os.MkdirAll(dir, 0o700))
	t.Cleanup(func() { os.RemoveAll(dir) })
	orig := *m
	path := filepath.Join(dir, "map")
	require.NoError(t, orig.Pin(path))
	ro, err := ebpf.LoadPinnedMap(path, &ebpf.LoadPinOptions{ReadOnly: true})
	require.NoError(t, err)
	d.mu.Lock()
	*m = ro
	d.mu.Unlock()
	restored := false
	restore := func() {
		if restored {
			return
		}
		restored = true
		d.mu.Lock()
		*m = orig
		d.mu.Unlock()
		ro.Close()
		require.NoError(t, orig.Unpin())
	}
	t.Cleanup(restore)
	return restore
}

// checkBookkeeping asserts that the flow table's mirror accounts for every
// flow id and mask slot, and that the kernel's maps say the same: every id
// is in exactly one place (never used, in use, quarantined, free or
// stale), every mask slot in use has as many references as flows use it
// and at least one, and the masks and the search order in the kernel match.
func checkBookkeeping(t *testing.T, d *Datapath) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	ft := d.flows
	seen := make([]uint8, ft.ids.limit)
	place := make([]string, ft.ids.limit)
	mark := func(id uint32, where string) {
		require.NotZero(t, id, "id 0 is never handed out (%s)", where)
		require.Less(t, id, ft.ids.limit)
		seen[id]++
		require.Equal(t, uint8(1), seen[id], "flow id %d is both %s and %s", id, place[id], where)
		place[id] = where
	}
	refs := [MaxMasks]int{}
	for hkey, f := range ft.byKey {
		require.Equal(t, hkey, f.hkey)
		mark(f.id, "in use")
		refs[hkey.MaskSlot]++
	}
	for _, id := range ft.ids.free {
		mark(id, "free")
	}
	for _, q := range ft.ids.quarantine {
		mark(q.id, "quarantined")
	}
	for _, id := range ft.ids.stale {
		mark(id, "stale")
	}
	for id := uint32(1); id < ft.ids.limit; id++ {
		if id >= ft.ids.next {
			mark(id, "never used")
		}
		require.Equal(t, uint8(1), seen[id], "flow id %d is lost: in no list", id)
	}

	// The kernel's flow table holds exactly the mirror's flows.
	n := 0
	var hkey Key
	var id uint32
	it := ft.objs.Flows.Iterate()
	for it.Next(&hkey, &id) {
		n++
		f := ft.byKey[hkey]
		require.NotNil(t, f, "kernel flow %s is not in the mirror", FormatFlow(&hkey, &hkey))
		require.Equal(t, f.id, id)
	}
	require.NoError(t, it.Err())
	require.Equal(t, len(ft.byKey), n, "flows in the kernel")

	var used []uint8
	for slot := range MaxMasks {
		var km bpf.DatapathOvsbpfMask
		require.NoError(t, ft.objs.Masks.Lookup(uint32(slot), &km))
		s := ft.masks[slot]
		if s == nil {
			require.Zero(t, refs[slot], "flows use mask slot %d, which is free", slot)
			require.Zero(t, km.Used, "mask slot %d is free in the mirror but used in the kernel", slot)
			continue
		}
		require.Equal(t, refs[slot], s.refs, "references of mask slot %d", slot)
		require.Positive(t, s.refs, "mask slot %d is taken by no flow: leaked", slot)
		require.Equal(t, uint32(1), km.Used, "mask slot %d in the kernel", slot)
		want := s.mask
		want.MaskSlot = uint8(slot) // what the search's AND puts into the masked key
		require.Equal(t, want, Mask(km.Bits), "mask slot %d in the kernel", slot)
		used = append(used, uint8(slot))
	}
	var korder bpf.DatapathOvsbpfMaskOrder
	require.NoError(t, ft.objs.MaskOrder.Lookup(uint32(0), &korder))
	require.Equal(t, ft.order, korder.Slot[:korder.N], "the search order in the kernel and in the mirror")
	require.ElementsMatch(t, used, ft.order, "the search tries every used mask slot, once")
	checkBlocks(t, ft)
}

// checkBlocks asserts the same of the action block pool: every block is
// never used, held by the list of a flow id in use (or stale, whose list a
// late reader may still follow), quarantined or free, and only one of
// them.
func checkBlocks(t *testing.T, ft *flowTable) {
	t.Helper()
	seen := make([]uint8, ft.blocks.limit)
	place := make([]string, ft.blocks.limit)
	mark := func(b uint32, where string) {
		require.NotZero(t, b, "block 0 is never handed out (%s)", where)
		require.Less(t, b, ft.blocks.limit)
		seen[b]++
		require.Equal(t, uint8(1), seen[b], "action block %d is both %s and %s", b, place[b], where)
		place[b] = where
	}
	holders := map[uint32]bool{}
	for _, f := range ft.byKey {
		holders[f.id] = true
	}
	for _, id := range ft.ids.stale {
		holders[id] = true
	}
	for id, bs := range ft.blocksOf {
		require.True(t, holders[id], "flow id %d holds action blocks but is neither in use nor stale", id)
		for _, b := range bs {
			mark(b, fmt.Sprintf("held by flow id %d", id))
		}
	}
	for _, b := range ft.blocks.free {
		mark(b, "free")
	}
	for _, q := range ft.blocks.quarantine {
		mark(q.id, "quarantined")
	}
	for b := uint32(1); b < ft.blocks.limit; b++ {
		if b >= ft.blocks.next {
			mark(b, "never used")
		}
		require.Equal(t, uint8(1), seen[b], "action block %d is lost: in no list", b)
	}
}

// TestFailedFlowWritesLeakNothing makes each map the flow table writes
// refuse writes, runs the operation that writes it, and checks that the
// failure gave back every flow id and mask slot it took, in the mirror
// and in the kernel; then that the same operation succeeds once the map
// takes writes again, and that deleting every flow frees every slot.
func TestFailedFlowWritesLeakNothing(t *testing.T) {
	l2 := maskOf(l2Switch...)
	l3 := maskOf(mInPort, mRecirc, mEthType, mNwDst24)
	putNewMask := func(d *Datapath) error { _, err := d.PutFlow(l3, keyFor(2), []Action{DecTTL(), Output(1)}); return err }
	putKnownMask := func(d *Datapath) error { _, err := d.PutFlow(l2, keyFor(3), []Action{Output(1)}); return err }
	replace := func(d *Datapath) error { _, err := d.PutFlow(l2, keyFor(1), []Action{Output(3)}); return err }
	del := func(d *Datapath) error { return d.DeleteFlow(l2, keyFor(1)) }
	// A flood: a list of three blocks, two from the pool.
	var flood []Action
	for i := range 2*BlockActions + 1 {
		flood = append(flood, Output(uint16(i%3+1)))
	}
	putFlood := func(d *Datapath) error { _, err := d.PutFlow(l2, keyFor(3), flood); return err }
	replaceByFlood := func(d *Datapath) error { _, err := d.PutFlow(l2, keyFor(1), flood); return err }
	floodNewMask := func(d *Datapath) error { _, err := d.PutFlow(l3, keyFor(2), flood); return err }
	tests := []struct {
		name string
		m    func(o *bpf.DatapathObjects) **ebpf.Map
		op   func(*Datapath) error
		// fails is false where the operation succeeds in spite of the
		// failed write (a deleted flow whose id cannot be retired).
		fails bool
	}{
		{"new mask, search order refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.MaskOrder }, putNewMask, true},
		{"new mask, mask slot refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.Masks }, putNewMask, true},
		{"new mask, flow insert refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.Flows }, putNewMask, true},
		{"new mask, action list refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.FlowActions }, putNewMask, true},
		{"known mask, flow insert refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.Flows }, putKnownMask, true},
		{"known mask, action list refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.FlowActions }, putKnownMask, true},
		{"replace, statistics refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.FlowStats }, replace, true},
		{"replace, action list refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.FlowActions }, replace, true},
		{"replace, flow update refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.Flows }, replace, true},
		{"delete, flow delete refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.Flows }, del, true},
		{"delete, retire refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.FlowActions }, del, false},
		{"flood, action block refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.ActionBlocks }, putFlood, true},
		{"flood, first block refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.FlowActions }, putFlood, true},
		{"flood, flow insert refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.Flows }, putFlood, true},
		{"replace by a flood, action block refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.ActionBlocks }, replaceByFlood, true},
		{"flood under a new mask, search order refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.MaskOrder }, floodNewMask, true},
		{"replace by a flood, flow update refused", func(o *bpf.DatapathObjects) **ebpf.Map { return &o.Flows }, replaceByFlood, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := openTest(t, Config{})
			_, err := d.PutFlow(l2, keyFor(1), []Action{Output(2)})
			require.NoError(t, err)
			checkBookkeeping(t, d)
			before := d.FlowCount()

			restore := readOnly(t, d, tt.m(&d.objs))
			err = tt.op(d)
			if tt.fails {
				require.Error(t, err, "the refused write fails the operation")
				require.Equal(t, before, d.FlowCount(), "a failed operation changes no flow")
			} else {
				require.NoError(t, err)
			}
			checkBookkeeping(t, d)
			restore()

			// With the map writable again a failed operation goes
			// through: its failure left nothing in the way. The next
			// write retires an id whose retire failed.
			if tt.fails {
				require.NoError(t, tt.op(d))
				checkBookkeeping(t, d)
			}
			_, err = d.PutFlow(l2, keyFor(4), []Action{Output(2)})
			require.NoError(t, err)
			checkBookkeeping(t, d)
			d.mu.Lock()
			require.Empty(t, d.flows.ids.stale, "a stale id is retired at the next write")
			d.mu.Unlock()

			require.Equal(t, d.FlowCount(), d.DeleteFlows())
			checkBookkeeping(t, d)
			require.Zero(t, d.MaskCount(), "no mask slot left once every flow is gone")
		})
	}
}
