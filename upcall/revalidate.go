package upcall

import (
	"context"
	"slices"
	"sort"
	"time"

	"github.com/ovsbpf/ovsbpf/datapath"
)

// revalidator sweeps the megaflows every RevalidateEvery, and at once when
// the pipeline changes: it deletes idle flows, keeps the count under the
// flow limit, and checks flows decided at an older pipeline version.
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
		s.Revalidate()
	}
}

// Revalidate runs one sweep now.
func (s *Slowpath) Revalidate() {
	s.sweep.Lock()
	defer s.sweep.Unlock()
	s.stats.revalidations.Add(1)
	// The sweep reuses one slice, so that sweeping thousands of flows
	// twice a second does not keep the garbage collector busy.
	clear(s.sweepFlows)
	flows, err := s.dp.AppendFlowsLastUsed(s.sweepFlows[:0])
	s.sweepFlows = flows
	if err != nil {
		s.log.Error("revalidator cannot read the flows", "err", err)
		return
	}
	now := time.Now()
	version := s.pipe.Version()
	live := flows[:0] // kept flows, compacted in place
	for _, f := range flows {
		id := ukeyID{f.Mask, f.Key}
		last := f.Stats.Used
		uk := s.lookupUkey(id)
		if uk != nil && last.IsZero() {
			last = uk.created
		}
		if last.IsZero() || now.Sub(last) > s.cfg.MaxIdle {
			if s.delete(f, "idle") {
				s.stats.expired.Add(1)
			}
			continue
		}
		if uk == nil || uk.version != version {
			if !s.recheck(f, uk, version) {
				continue
			}
		}
		live = append(live, f)
	}
	if over := len(live) - s.cfg.FlowLimit; over > 0 {
		// Least recently used first.
		sort.Slice(live, func(i, j int) bool { return live[i].Stats.Used.Before(live[j].Stats.Used) })
		for _, f := range live[:over] {
			if s.delete(f, "flow limit") {
				s.stats.evicted.Add(1)
			}
		}
	}
}

func (s *Slowpath) lookupUkey(id ukeyID) *ukey {
	v, ok := s.ukeys.Load(id)
	if !ok {
		return nil
	}
	return v.(*ukey)
}

// recheck asks the current pipeline about a flow again. It keeps the flow
// when the pipeline decides its packet the same way reading no bit the
// flow does not match, replaces its actions when only they changed, and
// deletes it otherwise. A flow with no ukey (left by an earlier daemon) is
// checked with its masked key as the packet.
func (s *Slowpath) recheck(f datapath.Flow, uk *ukey, version uint64) bool {
	if uk == nil {
		var pk datapath.PacketKey
		pk.SetNarrow(f.Key)
		uk = &ukey{pkt: PacketFields(&pk), mask: f.Mask, actions: f.Actions, created: time.Now()}
	}
	dec, err := s.pipe.Process(uk.pkt)
	if err != nil || dec.NoCache != "" {
		s.delete(f, "pipeline changed")
		s.stats.revalidatedAway.Add(1)
		return false
	}
	var pk datapath.PacketKey
	pk.SetNarrow(f.Key)
	mask, err := MegaflowMask(&dec.Mask, &pk)
	if err != nil || !f.Mask.Covers(&mask) {
		// The new decision reads bits this flow does not match on.
		s.delete(f, "pipeline reads more")
		s.stats.revalidatedAway.Add(1)
		return false
	}
	acts, err := BuildActions(&uk.pkt, dec.Outputs)
	if err != nil || len(acts) > datapath.MaxActions {
		s.delete(f, "actions unsupported")
		s.stats.revalidatedAway.Add(1)
		return false
	}
	if !slices.Equal(acts, f.Actions) {
		if _, err := s.dp.PutFlow(f.Mask, f.Key, acts); err != nil {
			s.log.Warn("revalidator cannot rewrite a flow; deleting it", "flow", f.String(), "err", err)
			s.delete(f, "rewrite failed")
			return false
		}
		s.log.Debug("revalidator rewrote a flow", "flow", datapath.FormatFlow(&f.Key, &f.Mask),
			"old", datapath.FormatActions(f.Actions), "new", datapath.FormatActions(acts))
	}
	s.ukeys.Store(ukeyID{f.Mask, f.Key}, &ukey{pkt: uk.pkt, mask: f.Mask, actions: acts, version: version, created: uk.created})
	return true
}

func (s *Slowpath) delete(f datapath.Flow, why string) bool {
	s.ukeys.Delete(ukeyID{f.Mask, f.Key})
	if err := s.dp.DeleteFlow(f.Mask, f.Key); err != nil {
		s.log.Debug("revalidator delete", "flow", datapath.FormatFlow(&f.Key, &f.Mask), "err", err)
		return false
	}
	s.log.Debug("revalidator deleted a flow", "why", why, "flow", datapath.FormatFlow(&f.Key, &f.Mask))
	return true
}
