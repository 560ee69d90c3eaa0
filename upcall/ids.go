package upcall

import (
	"fmt"
	"sync"
)

// idTable names values of S with small integers for the datapath:
// recirculation ids for frozen pipeline states, and ct_params indexes for
// conntrack parameters. Equal values get the same id, so the megaflows of
// one state share one id, and a decision is the same whichever handler
// takes it (the soundness suite relies on that).
//
// Ids are collected, not counted: each revalidator sweep lists the ids
// the installed megaflows name (in their keys or actions) and frees those
// that no flow named and no handler took for two sweeps. A handler takes
// an id before it installs the flow that names it and delivers with it
// just after; two sweeps (at least one whole period) is far longer. So an
// id a packet may still carry in the datapath is never freed, and reference
// counts, which a lost delete or a restart would leave wrong, are not kept.
type idTable[S comparable] struct {
	what string

	mu     sync.Mutex
	byVal  map[S]uint32
	byID   map[uint32]*idEntry[S]
	sweeps uint64 // collections so far
	// Ids are handed out from next up to max, wrapping to first; one
	// still in use is skipped. Recirculation ids use all 32 bits, so
	// they come back only after 4 billion allocations, long after any
	// packet that carried the old meaning.
	first, next, max uint32
}

type idEntry[S comparable] struct {
	val  S
	seen uint64 // the sweep count when last taken or found in use
}

func newIDTable[S comparable](what string, first, max uint32) *idTable[S] {
	return &idTable[S]{what: what, byVal: map[S]uint32{}, byID: map[uint32]*idEntry[S]{},
		first: first, next: first, max: max}
}

// Get returns the id of v, allocating one if v has none. A new id is
// handed out only once init, if not nil, has succeeded on it; it runs
// under the table's lock, so no other caller sees the id before.
func (t *idTable[S]) Get(v S, init func(id uint32) error) (id uint32, created bool, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id, ok := t.byVal[v]; ok {
		t.byID[id].seen = t.sweeps
		return id, false, nil
	}
	if uint64(len(t.byID)) > uint64(t.max-t.first) {
		return 0, false, fmt.Errorf("all %d %s are in use", uint64(t.max-t.first)+1, t.what)
	}
	for {
		id = t.next
		if t.next == t.max {
			t.next = t.first
		} else {
			t.next++
		}
		if _, used := t.byID[id]; !used {
			break
		}
	}
	if init != nil {
		if err := init(id); err != nil {
			return 0, false, fmt.Errorf("setting up %s %d: %w", t.what, id, err)
		}
	}
	t.byVal[v] = id
	t.byID[id] = &idEntry[S]{val: v, seen: t.sweeps}
	return id, true, nil
}

// SkipTo has ids handed out from id on, for ids below it that flows an
// earlier daemon left may carry.
func (t *idTable[S]) SkipTo(id uint32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id >= t.first && id <= t.max {
		t.next = id
	}
}

// Lookup returns the value id names.
func (t *idTable[S]) Lookup(id uint32) (S, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.byID[id]
	if !ok {
		var zero S
		return zero, false
	}
	return e.val, true
}

// Adopt records that id names v, for ids a megaflow left by an earlier
// daemon names: they must not be handed out for anything else. Ids past
// it are handed out next, so a new value never takes an id an old flow
// may still carry. It fails if id already names another value.
func (t *idTable[S]) Adopt(id uint32, v S) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id < t.first || id > t.max {
		return fmt.Errorf("%s %d: outside %d..%d", t.what, id, t.first, t.max)
	}
	if e, ok := t.byID[id]; ok {
		if e.val != v {
			return fmt.Errorf("%s %d is already in use for another value", t.what, id)
		}
		return nil
	}
	// With two ids for one value, the first stays the one handed out;
	// the other is kept from reuse until its flows go.
	if _, ok := t.byVal[v]; !ok {
		t.byVal[v] = id
	}
	t.byID[id] = &idEntry[S]{val: v, seen: t.sweeps}
	if id >= t.next && id != t.max {
		t.next = id + 1
	}
	return nil
}

// Collect ends a sweep: inUse holds every id the installed megaflows name.
// Ids neither in it nor taken during this sweep or the one before are
// freed, and returned.
func (t *idTable[S]) Collect(inUse map[uint32]bool) []uint32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweeps++
	var freed []uint32
	for id, e := range t.byID {
		if inUse[id] {
			e.seen = t.sweeps
			continue
		}
		if t.sweeps-e.seen >= 2 {
			if t.byVal[e.val] == id {
				delete(t.byVal, e.val)
			}
			delete(t.byID, id)
			freed = append(freed, id)
		}
	}
	return freed
}

// Len returns how many ids are in use.
func (t *idTable[S]) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byID)
}
