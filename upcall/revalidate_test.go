package upcall

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// memTable is a megaflow table in memory: what the revalidator sees of the
// datapath, without the kernel. used sets a flow's last hit.
type memTable struct {
	mu      sync.Mutex
	flows   map[ukeyID]*datapath.Flow
	puts    int // PutFlow calls that changed the table
	deletes int
}

func newMemTable() *memTable { return &memTable{flows: map[ukeyID]*datapath.Flow{}} }

func (m *memTable) PutFlow(mask datapath.Mask, key datapath.Key, acts []datapath.Action) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	key = key.And(&mask)
	id := ukeyID{mask, key}
	f, ok := m.flows[id]
	if ok && fmt.Sprint(f.Actions) == fmt.Sprint(acts) {
		return false, nil
	}
	m.puts++
	if !ok {
		f = &datapath.Flow{Key: key, Mask: mask, ID: uint32(len(m.flows) + 1)}
		m.flows[id] = f
	}
	f.Actions = append([]datapath.Action(nil), acts...)
	return !ok, nil
}

func (m *memTable) DeleteFlow(mask datapath.Mask, key datapath.Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := ukeyID{mask, key.And(&mask)}
	if _, ok := m.flows[id]; !ok {
		return datapath.ErrNoFlow
	}
	m.deletes++
	delete(m.flows, id)
	return nil
}

func (m *memTable) DeleteFlows() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.flows)
	clear(m.flows)
	return n
}

func (m *memTable) AppendFlowsLastUsed(dst []datapath.Flow) ([]datapath.Flow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.flows {
		dst = append(dst, *f)
	}
	return dst, nil
}

func (m *memTable) ReorderMasks() error { return nil }

func (m *memTable) FlowCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.flows)
}

func (m *memTable) used(mask datapath.Mask, key datapath.Key, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.flows[ukeyID{mask, key.And(&mask)}].Stats.Used = at
}

func (m *memTable) actions(mask datapath.Mask, key datapath.Key) (string, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.flows[ukeyID{mask, key.And(&mask)}]
	if !ok {
		return "", false
	}
	return datapath.FormatActions(f.Actions), true
}

// loadingPipeline is an l2Pipeline that answers ErrNotReady until loaded,
// and counts the questions it is asked.
type loadingPipeline struct {
	*l2Pipeline
	loaded atomic.Bool
	asked  atomic.Int64
}

func (p *loadingPipeline) Process(pkt field.Key) (Decision, error) {
	p.asked.Add(1)
	if !p.loaded.Load() {
		return Decision{}, fmt.Errorf("chassis: %w", ErrNotReady)
	}
	return p.l2Pipeline.Process(pkt)
}

// rig is a megaflows owner over a memTable and a loadingPipeline with
// ports 1..3, each with one MAC.
type rig struct {
	tbl  *memTable
	pipe *loadingPipeline
	mf   *megaflows
	st   *counters
	macs []net.HardwareAddr
}

func newRig(t *testing.T, maxIdle time.Duration, flowLimit int) *rig {
	r := &rig{tbl: newMemTable(), pipe: &loadingPipeline{l2Pipeline: &l2Pipeline{macs: map[[6]byte]uint16{}, ports: []uint16{1, 2, 3}}}, st: &counters{}}
	for i := 1; i <= 3; i++ {
		mac := net.HardwareAddr{0x0a, 0, 0, 0, 0, byte(i)}
		r.macs = append(r.macs, mac)
		r.pipe.macs[[6]byte(mac)] = uint16(i)
	}
	r.pipe.loaded.Store(true)
	r.mf = newMegaflows(r.tbl, r.pipe, &Config{MaxIdle: maxIdle, FlowLimit: flowLimit}, r.st, nil)
	return r
}

// packet is the narrow key of a packet from port in to dst.
func packet(in uint16, dst net.HardwareAddr) datapath.PacketKey {
	var k datapath.Key
	k.InPort = in
	copy(k.EthDst[:], dst)
	k.SetEtherType(0x0800)
	var pk datapath.PacketKey
	pk.SetNarrow(k)
	return pk
}

// decide runs a packet through the pipeline and installs its megaflow as
// a handler would; it returns the flow's mask and key.
func (r *rig) decide(t *testing.T, in uint16, dst net.HardwareAddr) (datapath.Mask, datapath.Key) {
	t.Helper()
	pk := packet(in, dst)
	pkt := PacketFields(&pk)
	version := r.pipe.Version()
	dec, err := r.pipe.Process(pkt)
	require.NoError(t, err)
	mask, err := MegaflowMask(&dec.Mask, &pk)
	require.NoError(t, err)
	acts, err := BuildActions(&pkt, &dec, nil)
	require.NoError(t, err)
	key := pk.Narrow().And(&mask)
	require.NoError(t, r.mf.install(mask, key, pkt, acts, version))
	r.tbl.used(mask, key, time.Now())
	return mask, key
}

func TestRevalidatorKeepsFlowsUntilThePipelineIsLoaded(t *testing.T) {
	r := newRig(t, time.Minute, 100)
	// The flows an earlier daemon left: in the table, with no ukeys,
	// decided at a pipeline this slow path never saw.
	type flow struct {
		mask datapath.Mask
		key  datapath.Key
	}
	var left []flow
	for in := uint16(1); in <= 3; in++ {
		for j, dst := range r.macs {
			if int(in) == j+1 {
				continue
			}
			m, k := r.decide(t, in, dst)
			left = append(left, flow{m, k})
		}
	}
	// The first of them was last hit long ago, the second never.
	r.tbl.used(left[0].mask, left[0].key, time.Now().Add(-2*time.Minute))
	r.tbl.used(left[1].mask, left[1].key, time.Time{})
	r.mf.ukeys.Clear()
	r.pipe.loaded.Store(false)
	r.pipe.version.Add(1)
	puts := r.tbl.puts
	r.pipe.asked.Store(0)

	r.mf.revalidate()
	require.Equal(t, len(left)-1, r.tbl.FlowCount(), "only the idle flow goes: idle expiry needs no pipeline")
	require.Equal(t, uint64(1), r.st.expired.Load())
	require.Zero(t, r.st.revalidatedAway.Load(), "a pipeline that is not loaded judges no flow")
	require.Equal(t, int64(1), r.pipe.asked.Load(), "one not-ready answer ends the sweep's questions")
	require.Equal(t, uint64(1), r.st.notReadySweeps.Load())
	require.Zero(t, r.mf.ukeyCount(), "no ukey made from a pipeline that is not loaded")

	r.mf.revalidate()
	require.Equal(t, len(left)-1, r.tbl.FlowCount(), "a flow never hit has MaxIdle from the slow path's start")

	// Loaded, with the same decisions: every flow stays, none rewritten.
	r.pipe.loaded.Store(true)
	r.pipe.version.Add(1)
	r.mf.revalidate()
	require.Equal(t, len(left)-1, r.tbl.FlowCount())
	require.Equal(t, puts, r.tbl.puts, "no flow installed again")
	require.Zero(t, r.st.revalidatedAway.Load())
	require.Equal(t, len(left)-1, r.mf.ukeyCount(), "every kept flow has a ukey now")
	asked := r.pipe.asked.Load()
	r.mf.revalidate()
	require.Equal(t, asked, r.pipe.asked.Load(), "flows checked at this version are not asked about again")
}

func TestRevalidatorFollowsAChangedPipeline(t *testing.T) {
	r := newRig(t, time.Minute, 100)
	m12, k12 := r.decide(t, 1, r.macs[1]) // 1 -> vm2 on port 2
	m13, k13 := r.decide(t, 1, r.macs[2]) // 1 -> vm3 on port 3
	m21, k21 := r.decide(t, 2, r.macs[0]) // 2 -> vm1 on port 1
	require.Equal(t, 3, r.tbl.FlowCount())

	// vm2 moves to port 3, vm3 goes away.
	r.pipe.set(r.macs[1], 3)
	r.pipe.set(r.macs[2], 0)
	r.mf.revalidate()
	acts, ok := r.tbl.actions(m12, k12)
	require.True(t, ok)
	require.Equal(t, "3", acts, "a moved MAC: the flow is rewritten")
	acts, ok = r.tbl.actions(m13, k13)
	require.True(t, ok)
	require.Equal(t, "drop", acts, "a MAC gone: unknown unicast, cached as a drop")
	acts, _ = r.tbl.actions(m21, k21)
	require.Equal(t, "1", acts, "an unchanged decision is left alone")
	require.Equal(t, uint64(2), r.st.rewritten.Load())

	// The pipeline now reads the source MAC, which no flow matches on.
	r.pipe.readSrc.Store(true)
	r.pipe.version.Add(1)
	r.mf.revalidate()
	require.Zero(t, r.tbl.FlowCount())
	require.Equal(t, uint64(3), r.st.revalidatedAway.Load())
	require.Zero(t, r.mf.ukeyCount())
}

func TestRevalidatorExpiresIdleFlows(t *testing.T) {
	r := newRig(t, time.Second, 100)
	mOld, kOld := r.decide(t, 1, r.macs[1])
	mNew, kNew := r.decide(t, 1, r.macs[2])
	r.tbl.used(mOld, kOld, time.Now().Add(-2*time.Second))
	r.mf.revalidate()
	_, ok := r.tbl.actions(mOld, kOld)
	require.False(t, ok, "unused for longer than MaxIdle")
	_, ok = r.tbl.actions(mNew, kNew)
	require.True(t, ok)
	require.Equal(t, uint64(1), r.st.expired.Load())
	require.Equal(t, 1, r.mf.ukeyCount())
}

func TestRevalidatorEvictsLeastRecentlyUsedOverTheLimit(t *testing.T) {
	r := newRig(t, time.Minute, 2)
	type flow struct {
		mask datapath.Mask
		key  datapath.Key
	}
	var fs []flow
	now := time.Now()
	for i, p := range [][2]int{{1, 1}, {1, 2}, {2, 0}, {2, 2}} {
		m, k := r.decide(t, uint16(p[0]), r.macs[p[1]])
		r.tbl.used(m, k, now.Add(time.Duration(i-10)*time.Second)) // oldest first
		fs = append(fs, flow{m, k})
	}
	r.mf.revalidate()
	require.Equal(t, 2, r.tbl.FlowCount())
	require.Equal(t, uint64(2), r.st.evicted.Load())
	for i, f := range fs {
		_, ok := r.tbl.actions(f.mask, f.key)
		require.Equal(t, i >= 2, ok, "flow %d (the two least recently used go)", i)
	}
	require.Equal(t, 2, r.mf.ukeyCount())
}

func TestDeleteAllLeavesNoUkeys(t *testing.T) {
	r := newRig(t, time.Minute, 100)
	r.decide(t, 1, r.macs[1])
	r.decide(t, 1, r.macs[2])
	r.decide(t, 2, r.macs[0])
	require.Equal(t, 3, r.mf.ukeyCount())
	require.Equal(t, 3, r.mf.deleteAll())
	require.Zero(t, r.tbl.FlowCount())
	require.Zero(t, r.mf.ukeyCount())

	// A flow deleted behind the owner's back: its ukey is freed by the
	// first sweep that begins after the next one, which leaves younger
	// ukeys to installs under way.
	r.decide(t, 1, r.macs[1])
	m, k := r.decide(t, 1, r.macs[2])
	require.NoError(t, r.tbl.DeleteFlow(m, k))
	r.mf.revalidate()
	require.Equal(t, 2, r.mf.ukeyCount(), "an install may be under way")
	r.mf.revalidate()
	require.Equal(t, 1, r.mf.ukeyCount())
}
