package datapath

import (
	"fmt"

	"github.com/ovsbpf/ovsbpf/ct"
)

// openConntrack wraps the datapath object's conntrack maps (ct.h) in a
// ct.Table, for the ct actions' parameters and the dpctl conntrack
// commands.
func (d *Datapath) openConntrack() error {
	t, err := ct.NewTable(ct.Maps{Index: d.objs.CtIndex4, Conns: d.objs.CtConns4, Free: d.objs.CtFree4,
		Params: d.objs.CtParams, Timeouts: d.objs.CtTimeouts, Config: d.objs.CtConfig, Alloc: d.objs.CtAlloc,
		Counters: d.objs.CtCounters})
	if err != nil {
		return fmt.Errorf("opening the conntrack tables: %w", err)
	}
	d.ct = t
	return nil
}

// Conntrack returns the datapath's connection tracking tables.
func (d *Datapath) Conntrack() *ct.Table { return d.ct }

// SetCTParams writes the conntrack parameters a ct(params=i) action uses.
// Index 0 is never used.
func (d *Datapath) SetCTParams(i uint32, p ct.Params) error {
	if i == 0 || i > d.MaxCTParams() {
		return fmt.Errorf("ct params index %d: outside 1..%d", i, d.MaxCTParams())
	}
	return d.ct.SetParams(i, p)
}

// CTParamsAt reads back the parameters at index i.
func (d *Datapath) CTParamsAt(i uint32) (ct.Params, error) { return d.ct.ParamsAt(i) }

// MaxCTParams is the highest ct_params index.
func (d *Datapath) MaxCTParams() uint32 { return d.objs.CtParams.MaxEntries() - 1 }
