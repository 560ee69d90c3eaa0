package upcall

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// FlowTable is what the slow path needs of the datapath's megaflow table;
// *datapath.Datapath is one. Only the slow path's megaflows value calls
// it, so the table and the slow path's memory of it change together.
type FlowTable interface {
	PutFlow(mask datapath.Mask, key datapath.Key, actions []datapath.Action) (created bool, err error)
	DeleteFlow(mask datapath.Mask, key datapath.Key) error
	DeleteFlows() int
	// AppendFlowsLastUsed appends every megaflow with Stats.Used
	// filled; the Actions must not be changed.
	AppendFlowsLastUsed(dst []datapath.Flow) ([]datapath.Flow, error)
	FlowCount() int
	// ReorderMasks has the lookup try first the masks hit most since
	// the last call.
	ReorderMasks() error
}

// ErrNotReady is what a Pipeline's Process returns (or wraps) until it has
// its first full set of rules. The revalidator does not judge cached
// megaflows by such a pipeline: a restarted daemon keeps the megaflows its
// predecessor left until it can check them.
var ErrNotReady = errors.New("the pipeline is not loaded yet")

// megaflows owns the cached megaflows: the datapath's flow table and the
// ukeys, the slow path's memory of each megaflow. Handlers install through
// it, and the revalidator and control commands delete through it; nothing
// else writes the table. A ukey is stored before its flow is installed
// (a flow with no ukey is checked as one an earlier daemon left), so a
// flow may briefly lack a ukey, and each sweep frees ukeys whose flow has
// gone, whoever deleted it.
type megaflows struct {
	flows FlowTable
	pipe  Pipeline
	log   *slog.Logger
	stats *counters
	// maxIdle and flowLimit are Config's, defaults applied.
	maxIdle   time.Duration
	flowLimit int
	// started is when this slow path began: a flow left by an earlier
	// daemon that no packet has hit yet counts as used then, so it has
	// MaxIdle to show it is used.
	started time.Time

	ukeys sync.Map // ukeyID -> *ukey
	// sweep serialises sweeps and deleting every flow; sweeps reuse
	// sweepFlows and present.
	sweep      sync.Mutex
	sweepFlows []datapath.Flow
	present    map[ukeyID]bool
	lastSweep  time.Time // when the previous sweep started

	// Conntrack: the datapath's ct_params (nil: a datapath without
	// conntrack), the ids decisions name, and the sweep's scratch sets.
	ct          CTParamsTable
	recirc      *idTable[any]
	ctParams    *idTable[CTParams]
	recircInUse map[uint32]bool
	paramsInUse map[uint32]bool
}

// ukeyID names a megaflow.
type ukeyID struct{ mask, key datapath.Key }

// ukey is what the slow path remembers of a megaflow it installed (its
// ukeyID names the mask and key, the table holds the actions): the packet
// that made it, so the revalidator can ask the pipeline again, and the
// pipeline version that decided it.
type ukey struct {
	pkt     field.Key
	version uint64
	created time.Time
}

func newMegaflows(flows FlowTable, pipe Pipeline, cfg *Config, stats *counters, log *slog.Logger) *megaflows {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &megaflows{flows: flows, pipe: pipe, log: log, stats: stats, maxIdle: cfg.MaxIdle,
		flowLimit: cfg.FlowLimit, started: time.Now(), present: map[ukeyID]bool{},
		recirc:      newIDTable[any]("recirculation ids", 1, math.MaxUint32),
		recircInUse: map[uint32]bool{}, paramsInUse: map[uint32]bool{}}
	maxParams := uint32(0)
	if ct, ok := flows.(CTParamsTable); ok {
		m.ct, maxParams = ct, ct.MaxCTParams()
	}
	m.ctParams = newIDTable[CTParams]("conntrack parameter sets", 1, max(maxParams, 1))
	return m
}

// count returns the number of installed megaflows.
func (m *megaflows) count() int { return m.flows.FlowCount() }

// install remembers a megaflow and installs it.
func (m *megaflows) install(mask datapath.Mask, key datapath.Key, pkt field.Key, acts []datapath.Action, version uint64) error {
	id := ukeyID{mask, key}
	m.ukeys.Store(id, &ukey{pkt: pkt, version: version, created: time.Now()})
	if _, err := m.flows.PutFlow(mask, key, acts); err != nil {
		m.ukeys.Delete(id)
		return err
	}
	return nil
}

// deleteAll deletes every megaflow and its ukey, and returns how many
// flows there were.
func (m *megaflows) deleteAll() int {
	m.sweep.Lock()
	defer m.sweep.Unlock()
	n := m.flows.DeleteFlows()
	m.ukeys.Clear()
	return n
}

// ukeyCount returns how many ukeys the slow path holds.
func (m *megaflows) ukeyCount() int {
	n := 0
	m.ukeys.Range(func(any, any) bool { n++; return true })
	return n
}

func (m *megaflows) lookupUkey(id ukeyID) *ukey {
	v, ok := m.ukeys.Load(id)
	if !ok {
		return nil
	}
	return v.(*ukey)
}

// revalidator sweeps the megaflows every RevalidateEvery, and at once when
// the pipeline changes.
func (s *Slowpath) revalidator(ctx context.Context) {
	tick := time.NewTicker(s.cfg.RevalidateEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		}
		s.mf.revalidate()
	}
}

// revalidate runs one sweep: it deletes idle flows, checks flows decided
// at an older pipeline version (unless the pipeline is not ready: then
// they stay as they are, to be checked once it is), keeps the count under
// the flow limit, and frees ukeys whose flow is gone.
func (m *megaflows) revalidate() {
	m.sweep.Lock()
	defer m.sweep.Unlock()
	m.stats.revalidations.Add(1)
	start := time.Now()
	// The sweep reuses one slice, so that sweeping thousands of flows
	// twice a second does not keep the garbage collector busy.
	clear(m.sweepFlows)
	flows, err := m.flows.AppendFlowsLastUsed(m.sweepFlows[:0])
	m.sweepFlows = flows
	if err != nil {
		m.log.Error("revalidator cannot read the flows", "err", err)
		return
	}
	m.collectIDs(flows)
	clear(m.present)
	version := m.pipe.Version()
	ready := true
	live := flows[:0] // kept flows, compacted in place
	for _, f := range flows {
		id := ukeyID{f.Mask, f.Key}
		m.present[id] = true
		last := f.Stats.Used
		uk := m.lookupUkey(id)
		if last.IsZero() {
			if uk != nil {
				last = uk.created
			} else {
				last = m.started
			}
		}
		if start.Sub(last) > m.maxIdle {
			if m.delete(f, "idle") {
				m.stats.expired.Add(1)
			}
			continue
		}
		if ready && (uk == nil || uk.version != version) {
			kept, err := m.recheck(f, uk, version)
			if errors.Is(err, ErrNotReady) {
				ready = false
			} else if !kept {
				continue
			}
		}
		live = append(live, f)
	}
	if !ready {
		m.stats.notReadySweeps.Add(1)
	}
	if over := len(live) - m.flowLimit; over > 0 {
		// Least recently used first.
		sort.Slice(live, func(i, j int) bool { return live[i].Stats.Used.Before(live[j].Stats.Used) })
		for _, f := range live[:over] {
			if m.delete(f, "flow limit") {
				m.stats.evicted.Add(1)
			}
		}
	}
	// A ukey stored before the previous sweep began whose flow is not
	// there is one whose flow went by another way (or whose install
	// failed): nothing will delete it otherwise. A younger one may
	// belong to a flow a handler is installing now (it stores the ukey
	// first); a whole sweep period is far longer than an install.
	m.ukeys.Range(func(k, v any) bool {
		if id := k.(ukeyID); !m.present[id] && v.(*ukey).created.Before(m.lastSweep) {
			m.ukeys.CompareAndDelete(id, v)
		}
		return true
	})
	m.lastSweep = start
	if err := m.flows.ReorderMasks(); err != nil {
		m.log.Error("revalidator cannot reorder the mask search", "err", err)
	}
}

// recheck asks the current pipeline about a flow again. It keeps the flow
// when the pipeline decides its packet the same way reading no bit the
// flow does not match, replaces its actions when only they changed, and
// deletes it otherwise. A flow with no ukey (left by an earlier daemon) is
// checked with its masked key as the packet. A pipeline that is not ready
// judges nothing: the flow is kept as it is and ErrNotReady returned.
func (m *megaflows) recheck(f datapath.Flow, uk *ukey, version uint64) (bool, error) {
	if uk == nil {
		var pk datapath.PacketKey
		pk.SetNarrow(f.Key)
		uk = &ukey{pkt: PacketFields(&pk), created: time.Now()}
	}
	dec, err := m.decide(f.Key.RecircId, uk.pkt)
	if errors.Is(err, ErrNotReady) {
		return true, err
	}
	if err != nil {
		// A flow at a recirculation id whose state is gone (left by
		// an earlier daemon) goes too: nothing can check it.
		m.delete(f, "pipeline changed")
		m.stats.revalidatedAway.Add(1)
		return false, nil
	}
	acts, err := BuildActions(&uk.pkt, &dec, m)
	if err != nil {
		m.delete(f, "actions unsupported")
		m.stats.revalidatedAway.Add(1)
		return false, nil
	}
	// The megaflow the new decision makes, derived as a handler derives
	// it, must match on no bit this flow does not.
	var pk datapath.PacketKey
	pk.SetNarrow(f.Key)
	mf, err := CacheEntry(&pk, &dec, acts)
	if err != nil || !f.Mask.Covers(&mf.Mask) {
		m.delete(f, "pipeline reads more")
		m.stats.revalidatedAway.Add(1)
		return false, nil
	}
	if !slices.Equal(acts, f.Actions) {
		if _, err := m.flows.PutFlow(f.Mask, f.Key, acts); err != nil {
			m.log.Warn("revalidator cannot rewrite a flow; deleting it", "flow", f.String(), "err", err)
			m.delete(f, "rewrite failed")
			return false, nil
		}
		m.stats.rewritten.Add(1)
		m.log.Debug("revalidator rewrote a flow", "flow", datapath.FormatFlow(&f.Key, &f.Mask),
			"old", datapath.FormatActions(f.Actions), "new", datapath.FormatActions(acts))
	}
	m.ukeys.Store(ukeyID{f.Mask, f.Key}, &ukey{pkt: uk.pkt, version: version, created: uk.created})
	return true, nil
}

func (m *megaflows) delete(f datapath.Flow, why string) bool {
	m.ukeys.Delete(ukeyID{f.Mask, f.Key})
	if err := m.flows.DeleteFlow(f.Mask, f.Key); err != nil {
		m.log.Debug("revalidator delete", "flow", datapath.FormatFlow(&f.Key, &f.Mask), "err", err)
		return false
	}
	m.log.Debug("revalidator deleted a flow", "why", why, "flow", datapath.FormatFlow(&f.Key, &f.Mask))
	return true
}
