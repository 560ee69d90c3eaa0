package datapath

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ovsbpf/ovsbpf/bpf"
)

// MaxMasks is the most distinct megaflow masks the datapath searches
// (OVSBPF_MAX_MASKS). Typed as the mask slots it bounds.
const MaxMasks = uint32(bpf.DatapathOvsbpfLimitOVSBPF_MAX_MASKS)

// DefaultMaxFlows is the megaflows a datapath holds unless Config says
// otherwise (OVSBPF_MAX_FLOWS): Open vSwitch's default flow limit.
const DefaultMaxFlows = int(bpf.DatapathOvsbpfLimitOVSBPF_MAX_FLOWS)

// idQuarantine is how long a freed flow id waits before reuse. A packet
// that found the id just before the flow went away reads its action list
// for a few microseconds; a second is far beyond that, and the list must
// not change under such a reader.
const idQuarantine = time.Second

var (
	// ErrFlowLimit is returned when the megaflow table is full.
	ErrFlowLimit = errors.New("megaflow table full")
	// ErrActionPool is returned when the blocks of long action lists
	// (floods) are all taken; the packet stays in the slow path.
	ErrActionPool = errors.New("action block pool full")
	// ErrTooManyMasks is returned when a megaflow needs a new mask and all
	// MaxMasks slots are taken; the packet stays in the slow path.
	ErrTooManyMasks = fmt.Errorf("all %d mask slots in use", MaxMasks)
	// ErrNoFlow is returned when deleting a megaflow that is not installed.
	ErrNoFlow = errors.New("no such megaflow")
)

// Flow is one megaflow.
type Flow struct {
	Key     Key  // already masked
	Mask    Mask // the bits that matter
	Actions []Action
	Stats   FlowStats // filled by Flows
	ID      uint32    // the datapath's flow id, for debugging
}

// FlowStats are a megaflow's counters, summed over CPUs.
type FlowStats struct {
	Packets uint64
	Bytes   uint64
	// Used is when a packet last hit the flow; zero if none has.
	Used time.Time
}

// String writes the flow as ovs-dpctl dump-flows does.
func (f *Flow) String() string {
	used := "never"
	if !f.Stats.Used.IsZero() {
		used = fmt.Sprintf("%.3fs", time.Since(f.Stats.Used).Seconds())
	}
	return fmt.Sprintf("%s, packets:%d, bytes:%d, used:%s, actions:%s",
		FormatFlow(&f.Key, &f.Mask), f.Stats.Packets, f.Stats.Bytes, used, FormatActions(f.Actions))
}

type flowEntry struct {
	id      uint32
	hkey    Key // the masked key with the mask slot in MaskSlot: the map key
	key     Key
	mask    Mask
	actions []Action
}

type maskSlot struct {
	mask Mask
	refs int
}

// flowTable mirrors the megaflow maps. The caller holds Datapath.mu.
type flowTable struct {
	objs  *bpf.DatapathObjects
	log   *slog.Logger
	used  *ebpf.Memory // flow_used, mapped: each flow's last hit in jiffies
	byKey map[Key]*flowEntry
	masks [MaxMasks]*maskSlot
	// order lists the used mask slots in the order the tuple space
	// search tries them (mask_order): the most hit first.
	order []uint8
	// hits is each slot's search hits, summed over CPUs, at the last
	// reorder.
	hits [MaxMasks]uint64
	ids  idAllocator
	// blocks hands out action_blocks indexes 1..pool to long lists.
	blocks   idAllocator
	blocksOf map[uint32][]uint32 // flow id -> its list's blocks, while it has any
}

// idAllocator hands out flow ids (and action block indexes). Every id from
// 1 to limit-1 is, at any time, in exactly one place: at or past next
// (never used), in use by a flow of the table, in quarantine, free, or
// stale.
type idAllocator struct {
	limit      uint32 // ids are below it
	next       uint32 // never used before
	free       []uint32
	quarantine []quarantined
	// stale ids could not be given a new generation when their flow
	// went (the action list update failed): an exact-match cache slot
	// may still name them, so they wait here, unused, until a later
	// retire succeeds.
	stale []uint32
	gens  []uint32
}

type quarantined struct {
	id uint32
	at time.Time
}

func (a *idAllocator) alloc(now time.Time) (uint32, bool) {
	for len(a.quarantine) > 0 && now.Sub(a.quarantine[0].at) >= idQuarantine {
		a.free = append(a.free, a.quarantine[0].id)
		a.quarantine = a.quarantine[1:]
	}
	if a.next < a.limit {
		id := a.next
		a.next++
		return id, true
	}
	if n := len(a.free); n > 0 {
		id := a.free[n-1]
		a.free = a.free[:n-1]
		return id, true
	}
	return 0, false
}

// unused gives back ids no packet can have seen (never linked into a
// list a packet reads): reusable at once.
func (a *idAllocator) unused(ids []uint32) { a.free = append(a.free, ids...) }

func (a *idAllocator) release(id uint32, now time.Time) {
	a.quarantine = append(a.quarantine, quarantined{id, now})
}

// bumpGen returns the next generation for id, never 0 (0 means unused).
func (a *idAllocator) bumpGen(id uint32) uint32 {
	a.gens[id]++
	if a.gens[id] == 0 {
		a.gens[id] = 1
	}
	return a.gens[id]
}

func (t *flowTable) len() int { return len(t.byKey) }

// releaseID puts a flow id, and the blocks of its action list, in
// quarantine.
func (t *flowTable) releaseID(id uint32, now time.Time) {
	for _, b := range t.blocksOf[id] {
		t.blocks.release(b, now)
	}
	delete(t.blocksOf, id)
	t.ids.release(id, now)
}

// writeActions writes the action list of flow id: its blocks after the
// first, each before the block that points at it, then the first at the
// id. A failure gives back the blocks it took (not the id): no packet
// reached them, since the first block was not written.
func (t *flowTable) writeActions(id uint32, enc []bpf.DatapathOvsbpfActions, now time.Time) error {
	var idx []uint32
	for range enc[1:] {
		b, ok := t.blocks.alloc(now)
		if !ok {
			t.blocks.unused(idx)
			return fmt.Errorf("%w (%d blocks of %d actions)", ErrActionPool, t.blocks.limit-1, BlockActions)
		}
		idx = append(idx, b)
	}
	linkBlocks(enc, idx)
	for i := len(enc) - 1; i >= 1; i-- {
		if err := t.objs.ActionBlocks.Update(unsafe.Pointer(&idx[i-1]), unsafe.Pointer(&enc[i]), ebpf.UpdateAny); err != nil {
			t.blocks.unused(idx)
			return fmt.Errorf("writing action block %d: %w", idx[i-1], err)
		}
	}
	if err := t.objs.FlowActions.Update(unsafe.Pointer(&id), unsafe.Pointer(&enc[0]), ebpf.UpdateAny); err != nil {
		t.blocks.unused(idx)
		return fmt.Errorf("writing actions: %w", err)
	}
	if len(idx) > 0 {
		t.blocksOf[id] = idx
	}
	return nil
}

// readActions reads the action list whose first block is first, following
// its chain, and returns it with the chain's block indexes.
func readActions(blocks *ebpf.Map, first *bpf.DatapathOvsbpfActions, pool uint32) ([]Action, []uint32, error) {
	out, end := appendDecoded(nil, first)
	var idx []uint32
	next := first.Next
	for !end {
		if next == 0 || next > pool || len(idx)+1 >= MaxActionBlocks {
			return nil, nil, fmt.Errorf("action block %d: outside the pool of %d or past %d blocks", next, pool, MaxActionBlocks)
		}
		var blk bpf.DatapathOvsbpfActions
		if err := blocks.Lookup(next, &blk); err != nil {
			return nil, nil, fmt.Errorf("reading action block %d: %w", next, err)
		}
		idx = append(idx, next)
		out, end = appendDecoded(out, &blk)
		next = blk.Next
	}
	return out, idx, nil
}

// recoverFlows rebuilds the mirror from the maps: empty for a fresh load,
// the previous daemon's megaflows for pinned maps.
// maxFlows is the flow id limit the maps were made with, pool the number
// of action blocks for megaflows.
func recoverFlows(objs *bpf.DatapathObjects, log *slog.Logger, maxFlows, pool uint32) (*flowTable, error) {
	used, err := objs.FlowUsed.Memory()
	if err != nil {
		return nil, fmt.Errorf("mapping the flows' last-use array: %w", err)
	}
	t := &flowTable{objs: objs, log: log, used: used, byKey: map[Key]*flowEntry{},
		ids:      idAllocator{limit: maxFlows, next: 1, gens: make([]uint32, maxFlows)},
		blocks:   idAllocator{limit: pool + 1, next: 1},
		blocksOf: map[uint32][]uint32{}}
	for slot := uint32(0); slot < MaxMasks; slot++ {
		var m bpf.DatapathOvsbpfMask
		if err := objs.Masks.Lookup(slot, &m); err != nil {
			return nil, fmt.Errorf("reading mask slot %d: %w", slot, err)
		}
		if m.Used != 0 {
			mask := Mask(m.Bits)
			mask.MaskSlot = 0 // the slot number, for the search
			t.masks[slot] = &maskSlot{mask: mask}
		}
	}
	// Keep a pinned search order (writeOrder drops what is not a used
	// slot and appends what it lacks).
	var order bpf.DatapathOvsbpfMaskOrder
	if err := objs.MaskOrder.Lookup(uint32(0), &order); err != nil {
		return nil, fmt.Errorf("reading the mask search order: %w", err)
	}
	t.order = slices.Clone(order.Slot[:min(order.N, MaxMasks)])
	var (
		hkey Key
		id   uint32
		bad  []Key
	)
	maxID := uint32(0)
	it := objs.Flows.Iterate()
	for it.Next(&hkey, &id) {
		slot := hkey.MaskSlot
		var acts bpf.DatapathOvsbpfActions
		if uint32(slot) >= MaxMasks || t.masks[slot] == nil || id == 0 || id >= maxFlows ||
			objs.FlowActions.Lookup(id, &acts) != nil || acts.Gen == 0 {
			bad = append(bad, hkey)
			continue
		}
		list, blocks, err := readActions(objs.ActionBlocks, &acts, pool)
		if err != nil {
			log.Warn("a pinned megaflow's action list is broken", "id", id, "err", err)
			bad = append(bad, hkey)
			continue
		}
		key := hkey
		key.MaskSlot = 0
		t.byKey[hkey] = &flowEntry{id: id, hkey: hkey, key: key, mask: t.masks[slot].mask, actions: list}
		if len(blocks) > 0 {
			t.blocksOf[id] = blocks
		}
		t.masks[slot].refs++
		maxID = max(maxID, id)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading the megaflow table: %w", err)
	}
	for _, k := range bad {
		log.Warn("deleting a pinned megaflow with no valid mask or action list", "flow", FormatFlow(&k, &k))
		objs.Flows.Delete(k)
	}
	if len(t.byKey) > 0 || maxID > 0 {
		// Keep every id's generation moving forward, so exact-match
		// cache slots from before the restart never match by accident.
		var gen uint32
		var acts bpf.DatapathOvsbpfActions
		ait := objs.FlowActions.Iterate()
		for ait.Next(&gen, &acts) {
			t.ids.gens[gen] = acts.Gen
		}
		inUse := map[uint32]bool{}
		for _, f := range t.byKey {
			inUse[f.id] = true
		}
		now := time.Now()
		for id := uint32(1); id <= maxID; id++ {
			if !inUse[id] {
				t.ids.release(id, now)
			}
		}
		t.ids.next = maxID + 1
		// Blocks no recovered list holds are free after the quarantine:
		// a packet of the last daemon's time may still read them.
		held := map[uint32]bool{}
		maxBlock := uint32(0)
		for _, bs := range t.blocksOf {
			for _, b := range bs {
				held[b] = true
				maxBlock = max(maxBlock, b)
			}
		}
		for b := uint32(1); b <= maxBlock; b++ {
			if !held[b] {
				t.blocks.release(b, now)
			}
		}
		t.blocks.next = maxBlock + 1
	}
	for slot := range t.masks {
		if t.masks[slot] != nil && t.masks[slot].refs == 0 {
			t.masks[slot] = nil
			objs.Masks.Update(uint32(slot), bpf.DatapathOvsbpfMask{}, ebpf.UpdateAny)
		}
	}
	if err := t.writeOrder(); err != nil {
		return nil, err
	}
	return t, nil
}

// writeOrder writes the search order: t.order's slots that are in use,
// each once, then any used slot it lacks, ascending.
func (t *flowTable) writeOrder() error {
	var listed [MaxMasks]bool
	order := t.order[:0]
	for _, slot := range t.order {
		if uint32(slot) < MaxMasks && t.masks[slot] != nil && !listed[slot] {
			listed[slot] = true
			order = append(order, slot)
		}
	}
	for slot := range t.masks {
		if t.masks[slot] != nil && !listed[slot] {
			order = append(order, uint8(slot))
		}
	}
	t.order = order
	var v bpf.DatapathOvsbpfMaskOrder
	v.N = uint32(copy(v.Slot[:], order))
	if err := t.objs.MaskOrder.Update(uint32(0), &v, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("writing the mask search order: %w", err)
	}
	return nil
}

// reorderMasks sorts the search order by the hits each mask had since the
// last reorder, most first, as Open vSwitch ranks its subtables: packets
// of the busiest megaflows then probe one mask, not every mask before
// theirs.
func (t *flowTable) reorderMasks() error {
	var since [MaxMasks]uint64
	for _, slot := range t.order {
		sum, err := t.sumHits(slot)
		if err != nil {
			return err
		}
		since[slot] = sum - t.hits[slot]
		t.hits[slot] = sum
	}
	busiestFirst := func(a, b uint8) int { return cmp.Compare(since[b], since[a]) }
	if slices.IsSortedFunc(t.order, busiestFirst) {
		return nil
	}
	slices.SortStableFunc(t.order, busiestFirst)
	return t.writeOrder()
}

// sumHits returns the search hits under mask slot, summed over CPUs.
func (t *flowTable) sumHits(slot uint8) (uint64, error) {
	var per []uint64
	if err := t.objs.MaskHits.Lookup(uint32(slot), &per); err != nil {
		return 0, fmt.Errorf("reading the hits of mask slot %d: %w", slot, err)
	}
	var sum uint64
	for _, n := range per {
		sum += n
	}
	return sum, nil
}

// maskSlotFor returns the slot of mask, taking a free one if it is new.
func (t *flowTable) maskSlotFor(mask *Mask) (int, bool, error) {
	free := -1
	for i, s := range t.masks {
		if s == nil {
			if free < 0 {
				free = i
			}
			continue
		}
		if s.mask == *mask {
			return i, false, nil
		}
	}
	if free < 0 {
		return 0, false, ErrTooManyMasks
	}
	return free, true, nil
}

// put installs or replaces a megaflow. The writes a handler waits on pass
// keys and values by pointer: bpf2go's types have the C layout
// (TestLayoutMatchesBTF), and cilium/ebpf would otherwise copy each
// through reflection, which was half of an install's CPU time
// (BenchmarkPutNewFlow).
//
// Every failure gives back what put took before it: the flow id goes to
// quarantine (a packet may have read its action list already), and a mask
// slot taken for this flow is cleared again.
func (t *flowTable) put(mask Mask, key Key, actions []Action) (bool, error) {
	mask.MaskSlot = 0
	key = key.And(&mask)
	now := time.Now()
	if len(t.ids.stale) > 0 {
		t.retryStale(now)
	}
	slot, newMask, err := t.maskSlotFor(&mask)
	if err != nil {
		return false, fmt.Errorf("megaflow %s: %w", FormatFlow(&key, &mask), err)
	}
	hkey := key
	hkey.MaskSlot = uint8(slot)
	old := t.byKey[hkey]
	if old != nil && slices.Equal(old.actions, actions) {
		return false, nil
	}
	id, ok := t.ids.alloc(now)
	if !ok {
		return false, fmt.Errorf("megaflow %s: %w (%d flows)", FormatFlow(&key, &mask), ErrFlowLimit, len(t.byKey))
	}
	gen := t.ids.bumpGen(id)
	enc, err := encodeActions(actions, gen)
	if err != nil {
		t.releaseID(id, now)
		return false, fmt.Errorf("megaflow %s: %w", FormatFlow(&key, &mask), err)
	}
	// The action list and zeroed statistics go in before the flow that
	// points at them, so a packet never finds a half-made flow.
	// An id never used before has zero statistics already (the update is
	// a syscall the first packet of a new flow waits for).
	if old != nil || gen > 1 {
		stats := make([]bpf.DatapathOvsbpfStats, ebpf.MustPossibleCPU())
		var used uint64
		if old != nil {
			// A changed megaflow keeps its counts, as OVS's modify does.
			st, err := t.readCounters(old.id)
			if err == nil {
				stats[0] = st
			}
			used = t.lastUsed(old.id)
		}
		t.setLastUsed(id, used)
		if err := t.objs.FlowStats.Update(id, stats, ebpf.UpdateAny); err != nil {
			t.releaseID(id, now)
			return false, fmt.Errorf("megaflow %s: clearing statistics: %w", FormatFlow(&key, &mask), err)
		}
	}
	if err := t.writeActions(id, enc, now); err != nil {
		t.releaseID(id, now)
		return false, fmt.Errorf("megaflow %s: %w", FormatFlow(&key, &mask), err)
	}
	if newMask {
		// The datapath's copy holds the slot number in mask_slot: the
		// search's AND puts it into the masked key.
		bits := bpf.DatapathOvsbpfNarrow(mask)
		bits.MaskSlot = uint8(slot)
		if err := t.objs.Masks.Update(uint32(slot), bpf.DatapathOvsbpfMask{Bits: bits, Used: 1}, ebpf.UpdateAny); err != nil {
			t.releaseID(id, now)
			return false, fmt.Errorf("megaflow %s: writing mask slot %d: %w", FormatFlow(&key, &mask), slot, err)
		}
		t.masks[slot] = &maskSlot{mask: mask}
		t.order = append(t.order, uint8(slot)) // searched last until it earns hits
		if err := t.writeOrder(); err != nil {
			t.releaseID(id, now)
			t.dropMaskIfUnused(slot)
			return false, fmt.Errorf("megaflow %s: %w", FormatFlow(&key, &mask), err)
		}
	}
	if err := t.objs.Flows.Update(unsafe.Pointer(&hkey), unsafe.Pointer(&id), ebpf.UpdateAny); err != nil {
		t.releaseID(id, now)
		if newMask {
			t.dropMaskIfUnused(slot) // no flow took a reference yet
		}
		if errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ENOMEM) {
			err = fmt.Errorf("%w: %w", ErrFlowLimit, err)
		}
		return false, fmt.Errorf("megaflow %s: inserting: %w", FormatFlow(&key, &mask), err)
	}
	if old != nil {
		t.retire(old, now)
	} else {
		t.masks[slot].refs++
	}
	t.byKey[hkey] = &flowEntry{id: id, hkey: hkey, key: key, mask: mask, actions: slices.Clone(actions)}
	return old == nil, nil
}

// retire makes a replaced or deleted flow's id stale: exact-match cache
// slots that name it stop matching, and it is reused only after the
// quarantine.
func (t *flowTable) retire(f *flowEntry, now time.Time) {
	gen := t.ids.bumpGen(f.id)
	// Only the first block changes: the old gen in it stops exact-match
	// cache slots naming the id, and its chain still leads to the old
	// blocks, which the quarantine keeps unchanged for a late reader.
	var first bpf.DatapathOvsbpfActions
	err := t.objs.FlowActions.Lookup(unsafe.Pointer(&f.id), unsafe.Pointer(&first))
	if err == nil {
		first.Gen = gen
		err = t.objs.FlowActions.Update(unsafe.Pointer(&f.id), unsafe.Pointer(&first), ebpf.UpdateAny)
	}
	if err != nil {
		// Without a new generation the id must not be reused yet:
		// retryStale tries again before the next install or delete.
		t.log.Error("cannot retire a flow id; keeping it aside", "id", f.id, "err", err)
		t.ids.stale = append(t.ids.stale, f.id)
		return
	}
	t.releaseID(f.id, now)
}

// retryStale retires again the ids whose retire failed. Their action
// lists are whatever the flow last had; a new generation with an empty
// list is as good, since no flow points at them.
func (t *flowTable) retryStale(now time.Time) {
	kept := t.ids.stale[:0]
	for _, id := range t.ids.stale {
		gen := max(t.ids.gens[id]+1, 1) // 0 means unused
		enc, err := encodeActions(nil, gen)
		if err == nil {
			err = t.objs.FlowActions.Update(unsafe.Pointer(&id), unsafe.Pointer(&enc[0]), ebpf.UpdateAny)
		}
		if err != nil {
			kept = append(kept, id)
			continue
		}
		t.ids.gens[id] = gen
		t.releaseID(id, now) // and its list's blocks, in quarantine
	}
	t.ids.stale = kept
}

func (t *flowTable) dropMaskIfUnused(slot int) {
	s := t.masks[slot]
	if s == nil || s.refs > 0 {
		return
	}
	t.masks[slot] = nil
	if err := t.objs.Masks.Update(uint32(slot), bpf.DatapathOvsbpfMask{}, ebpf.UpdateAny); err != nil {
		t.log.Error("cannot free mask slot", "slot", slot, "err", err)
	}
	// The next mask in this slot counts its hits from now.
	if sum, err := t.sumHits(uint8(slot)); err == nil {
		t.hits[slot] = sum
	}
	if err := t.writeOrder(); err != nil {
		t.log.Error("cannot take a freed mask out of the search", "err", err)
	}
}

func (t *flowTable) remove(f *flowEntry) error {
	if len(t.ids.stale) > 0 {
		t.retryStale(time.Now())
	}
	if err := t.objs.Flows.Delete(unsafe.Pointer(&f.hkey)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("megaflow %s: deleting: %w", FormatFlow(&f.key, &f.mask), err)
	}
	delete(t.byKey, f.hkey)
	t.retire(f, time.Now())
	slot := int(f.hkey.MaskSlot)
	t.masks[slot].refs--
	t.dropMaskIfUnused(slot)
	return nil
}

func (t *flowTable) find(mask Mask, key Key) *flowEntry {
	mask.MaskSlot = 0
	key = key.And(&mask)
	for slot, s := range t.masks {
		if s != nil && s.mask == mask {
			hkey := key
			hkey.MaskSlot = uint8(slot)
			return t.byKey[hkey]
		}
	}
	return nil
}

func (t *flowTable) deleteWhere(match func(*flowEntry) bool) int {
	n := 0
	for _, f := range t.byKey {
		if match(f) {
			if err := t.remove(f); err != nil {
				t.log.Error("cannot delete megaflow", "err", err)
				continue
			}
			n++
		}
	}
	return n
}

// readCounters sums a flow's per-CPU packet and byte counts.
func (t *flowTable) readCounters(id uint32) (bpf.DatapathOvsbpfStats, error) {
	var per []bpf.DatapathOvsbpfStats
	var sum bpf.DatapathOvsbpfStats
	if err := t.objs.FlowStats.Lookup(id, &per); err != nil {
		return sum, fmt.Errorf("reading statistics of flow %d: %w", id, err)
	}
	for _, s := range per {
		sum.Packets += s.Packets
		sum.Bytes += s.Bytes
	}
	return sum, nil
}

// lastUsed returns the jiffies of flow id's last hit, 0 if none, from the
// mapped array: no syscall. A hit may store it at the same moment; an
// aligned 8-byte load sees the old value or the new one.
func (t *flowTable) lastUsed(id uint32) uint64 {
	var b [8]byte
	if _, err := t.used.ReadAt(b[:], int64(id)*8); err != nil {
		return 0 // id out of range: never used
	}
	return binary.NativeEndian.Uint64(b[:])
}

func (t *flowTable) setLastUsed(id uint32, jiffies uint64) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], jiffies)
	t.used.WriteAt(b[:], int64(id)*8)
}

// readAllStats reads the statistics of flow ids 0..maxID with batched
// lookups: one syscall per 4,096 ids rather than one per flow, which is
// what keeps a revalidator sweep over thousands of flows cheap.
func (t *flowTable) readAllStats(maxID uint32, toTime func(uint64) time.Time) ([]FlowStats, error) {
	n := int(maxID) + 1
	out := make([]FlowStats, n)
	ncpu := ebpf.MustPossibleCPU()
	chunk := min(4096, n) // the ids in use are dense from 0
	keys := make([]uint32, chunk)
	vals := make([]bpf.DatapathOvsbpfStats, chunk*ncpu)
	var cursor ebpf.MapBatchCursor
	for done := 0; done < n; {
		got, err := t.objs.FlowStats.BatchLookup(&cursor, keys, vals, nil)
		for i := 0; i < got; i++ {
			id := keys[i]
			if int(id) >= n {
				continue
			}
			var st FlowStats
			for _, s := range vals[i*ncpu : (i+1)*ncpu] {
				st.Packets += s.Packets
				st.Bytes += s.Bytes
			}
			if used := t.lastUsed(id); used != 0 {
				st.Used = toTime(used)
			}
			out[id] = st
		}
		done += got
		if errors.Is(err, ebpf.ErrKeyNotExist) || got == 0 {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading flow statistics: %w", err)
		}
		if done >= n {
			break
		}
	}
	return out, nil
}

// PutFlow installs a megaflow: packets whose key, masked with mask, equals
// key masked with mask run actions. An empty action list drops. Installing
// an installed megaflow again with other actions replaces its actions
// (its statistics carry over); with the same actions it does nothing.
// created says whether the megaflow is new.
//
// The caller must not install megaflows that overlap under different
// masks: the tuple space search returns the first it finds.
func (d *Datapath) PutFlow(mask Mask, key Key, actions []Action) (created bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flows.put(mask, key, actions)
}

// DeleteFlow removes the megaflow (mask, key).
func (d *Datapath) DeleteFlow(mask Mask, key Key) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	f := d.flows.find(mask, key)
	if f == nil {
		k := key.And(&mask)
		return fmt.Errorf("megaflow %s: %w", FormatFlow(&k, &mask), ErrNoFlow)
	}
	return d.flows.remove(f)
}

// DeleteFlows removes every megaflow and returns how many there were.
func (d *Datapath) DeleteFlows() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flows.deleteWhere(func(*flowEntry) bool { return true })
}

// FlowCount returns the number of installed megaflows.
func (d *Datapath) FlowCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flows.len()
}

// Flows returns every megaflow with its statistics, ordered by in_port and
// then by key.
func (d *Datapath) Flows() ([]Flow, error) {
	toTime, err := d.clock.converter(d.objs.OvsbpfClock, d.objs.Clock)
	if err != nil {
		return nil, err
	}
	entries := d.entries(nil)
	maxID := uint32(0)
	for _, f := range entries {
		maxID = max(maxID, f.id)
	}
	all, err := d.flows.readAllStats(maxID, toTime)
	if err != nil {
		return nil, err
	}
	out := make([]Flow, 0, len(entries))
	for _, f := range entries {
		out = append(out, Flow{Key: f.key, Mask: f.mask, Actions: slices.Clone(f.actions), Stats: all[f.id], ID: f.id})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key.InPort != out[j].Key.InPort {
			return out[i].Key.InPort < out[j].Key.InPort
		}
		if c := bytes.Compare(out[i].Key.Bytes(), out[j].Key.Bytes()); c != 0 {
			return c < 0
		}
		return bytes.Compare(out[i].Mask.Bytes(), out[j].Mask.Bytes()) < 0
	})
	return out, nil
}

// AppendFlowsLastUsed appends every megaflow to dst, in no order, with
// only Stats.Used filled: what a revalidator needs each sweep, read from
// memory without a syscall or a copy of every CPU's counters. The Actions
// alias the table's own lists, which are never changed in place; callers
// must not change them either.
func (d *Datapath) AppendFlowsLastUsed(dst []Flow) ([]Flow, error) {
	toTime, err := d.clock.converter(d.objs.OvsbpfClock, d.objs.Clock)
	if err != nil {
		return dst, err
	}
	d.sweepMu.Lock()
	defer d.sweepMu.Unlock()
	entries := d.entries(d.sweepEntries[:0])
	for _, f := range entries {
		var st FlowStats
		if used := d.flows.lastUsed(f.id); used != 0 {
			st.Used = toTime(used)
		}
		dst = append(dst, Flow{Key: f.key, Mask: f.mask, Actions: f.actions, Stats: st, ID: f.id})
	}
	clear(entries) // keep no deleted flow alive
	d.sweepEntries = entries[:0]
	return dst, nil
}

// entries appends the installed flows' entries to dst. Only this takes
// mu, which installs wait on: an entry never changes once made, so callers
// read the entries after without it.
func (d *Datapath) entries(dst []*flowEntry) []*flowEntry {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, f := range d.flows.byKey {
		dst = append(dst, f)
	}
	return dst
}

// ReorderMasks has the tuple space search try first the masks that had the
// most hits since the last call. The revalidator calls it every sweep.
func (d *Datapath) ReorderMasks() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flows.reorderMasks()
}

// MaskCount returns how many masks the tuple space search goes through.
func (d *Datapath) MaskCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for _, s := range d.flows.masks {
		if s != nil {
			n++
		}
	}
	return n
}
