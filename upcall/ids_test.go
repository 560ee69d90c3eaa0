package upcall

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestIDTable(t *testing.T) {
	tab := newIDTable[string]("test ids", 1, 3)

	a, created, err := tab.Get("a", nil)
	require.NoError(t, err)
	require.True(t, created)
	again, created, err := tab.Get("a", nil)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, a, again, "equal values share an id")
	b, _, err := tab.Get("b", nil)
	require.NoError(t, err)
	c, _, err := tab.Get("c", nil)
	require.NoError(t, err)
	require.ElementsMatch(t, []uint32{1, 2, 3}, []uint32{a, b, c})
	_, _, err = tab.Get("d", nil)
	require.ErrorContains(t, err, "all 3 test ids are in use")

	// An id a flow names stays; one nobody named for two sweeps goes.
	require.Empty(t, tab.Collect(map[uint32]bool{a: true}), "taken during this sweep")
	require.Equal(t, []uint32{b, c}, slices.Sorted(slices.Values(tab.Collect(map[uint32]bool{a: true}))))
	v, ok := tab.Lookup(a)
	require.True(t, ok)
	require.Equal(t, "a", v)
	_, ok = tab.Lookup(b)
	require.False(t, ok)

	// Freed ids come back only after the others: ids are handed out in
	// turn, skipping those in use.
	d, _, err := tab.Get("d", nil)
	require.NoError(t, err)
	require.Equal(t, uint32(2), d, "next after the last handed out (3), wrapping past 1 which is in use")
}

func TestIDTableAdopt(t *testing.T) {
	tab := newIDTable[string]("recirculation ids", 1, 1<<32-1)
	require.NoError(t, tab.Adopt(7, "old"))
	require.NoError(t, tab.Adopt(7, "old"))
	require.ErrorContains(t, tab.Adopt(7, "other"), "recirculation ids 7 is already in use")
	require.ErrorContains(t, tab.Adopt(0, "x"), "outside 1..4294967295")
	id, created, err := tab.Get("new", nil)
	require.NoError(t, err)
	require.True(t, created)
	require.Equal(t, uint32(8), id, "a new value never takes an id below one an old flow carries")
	id, created, err = tab.Get("old", nil)
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, uint32(7), id)
}
