package upcall

import (
	"errors"
	"fmt"
	"math"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

// Recirculation and conntrack parameters, as the megaflow owner keeps
// them.
//
// A decision that meets a conntrack action which recirculates ends in
// ct(params) and recirc(id): id names the pipeline's frozen state (where
// it goes on, its registers), params the conntrack parameters. A miss at
// that id resumes the pipeline from the state. Both kinds of ids live in
// idTables and are collected by the revalidator from the flows that name
// them.

// CTParamsTable is the datapath's table of conntrack parameters, which
// ct actions name by index.
type CTParamsTable interface {
	// SetCTParams writes the parameters at index i, 1 up to
	// MaxCTParams.
	SetCTParams(i uint32, p CTParams) error
	// CTParamsAt reads the parameters at index i.
	CTParamsAt(i uint32) (CTParams, error)
	MaxCTParams() uint32
}

// errUnknownRecirc says a packet came back with a recirculation id no
// frozen state has: its flows outlived the state (a restart), or a
// packet was in flight for longer than two revalidator sweeps.
var errUnknownRecirc = errors.New("unknown recirculation id")

// decide runs the pipeline on a packet at recirculation id rid (0: the
// first pass; otherwise the pipeline resumes from the state rid names).
func (m *megaflows) decide(rid uint32, pkt field.Key) (Decision, error) {
	if rid == 0 {
		return m.pipe.Process(pkt)
	}
	state, ok := m.recirc.Lookup(rid)
	if !ok {
		return Decision{}, fmt.Errorf("recirculation id %#x: %w", rid, errUnknownRecirc)
	}
	return m.pipe.Resume(state, pkt)
}

// RecircID implements IDs.
func (m *megaflows) RecircID(state any) (uint32, error) {
	id, _, err := m.recirc.Get(state, nil)
	return id, err
}

// CTParams implements IDs: parameters new to the table are written to
// the datapath before their index is handed out, so no flow names an
// index the datapath does not have yet.
func (m *megaflows) CTParams(p CTParams) (uint32, error) {
	if m.ct == nil {
		return 0, errors.New("the datapath has no conntrack")
	}
	id, _, err := m.ctParams.Get(p, func(id uint32) error { return m.ct.SetCTParams(id, p) })
	return id, err
}

// collectIDs ends a sweep over flows: recirculation ids and ct_params
// indexes no flow names (and no handler took lately) are freed.
func (m *megaflows) collectIDs(flows []datapath.Flow) {
	clear(m.recircInUse)
	clear(m.paramsInUse)
	for i := range flows {
		f := &flows[i]
		if f.Key.RecircId != 0 {
			m.recircInUse[f.Key.RecircId] = true
		}
		for _, a := range f.Actions {
			switch a.Type {
			case datapath.ActionRecirc:
				m.recircInUse[a.Arg] = true
			case datapath.ActionCT:
				m.paramsInUse[a.Arg] = true
			}
		}
	}
	m.recirc.Collect(m.recircInUse)
	m.ctParams.Collect(m.paramsInUse)
}

// adoptIDs takes over the ids the flows an earlier daemon left name:
// their ct_params are read back from the datapath, so equal parameters
// keep their index; recirculation ids, whose states died with that
// daemon, are only kept from reuse (their flows are deleted when checked).
func (m *megaflows) adoptIDs(flows []datapath.Flow) error {
	var maxRecirc uint32
	for i := range flows {
		f := &flows[i]
		maxRecirc = max(maxRecirc, f.Key.RecircId)
		for _, a := range f.Actions {
			switch a.Type {
			case datapath.ActionRecirc:
				maxRecirc = max(maxRecirc, a.Arg)
			case datapath.ActionCT:
				if m.ct == nil {
					return errors.New("a flow left by an earlier daemon runs conntrack, and this datapath has none")
				}
				p, err := m.ct.CTParamsAt(a.Arg)
				if err != nil {
					return fmt.Errorf("reading back ct_params %d: %w", a.Arg, err)
				}
				if err := m.ctParams.Adopt(a.Arg, p); err != nil {
					return err
				}
			}
		}
	}
	if maxRecirc != 0 && maxRecirc != math.MaxUint32 {
		m.recirc.SkipTo(maxRecirc + 1)
	}
	return nil
}
