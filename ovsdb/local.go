package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsbpf/ovsbpf/ovsdb/vswitchmodel"
)

// LocalState is what a chassis reads from its local Open_vSwitch database.
type LocalState struct {
	SystemID  string // Open_vSwitch external_ids:system-id: the chassis name
	OVNRemote string // external_ids:ovn-remote: the Southbound database
	EncapType string // external_ids:ovn-encap-type
	EncapIP   string // external_ids:ovn-encap-ip
	NextCfg   int    // what ovs-vsctl waits for the switch to reach
	// The integration bridge: external_ids:ovn-bridge, br-int if unset.
	// BridgeUUID is empty while no bridge of that name exists.
	Bridge            string
	BridgeUUID        string
	BridgeExternalIDs map[string]string // where ovn-controller keeps ct-zone-* assignments
	// Interfaces with external_ids:iface-id, ordered by name.
	Interfaces []LocalInterface
	// Unbound are the other interfaces (bridges' internal ports among
	// them), ordered by name.
	Unbound []LocalInterface
}

// LocalInterface is one Interface row bound to a logical port.
type LocalInterface struct {
	UUID          string
	Name          string // the kernel interface
	IfaceID       string // external_ids:iface-id: the logical port
	OFPort        int    // ofport as last written (0: none)
	OFPortRequest int    // ofport_request (0: none)
	Type          string // "" (system), "internal", ...
	Error         string // the error column as last written
}

// LocalMonitor keeps a connection to the local Open_vSwitch database,
// delivers its state on every change, and writes back what a switch
// reports (ofport, cur_cfg), so that ovs-vsctl works as with ovs-vswitchd.
type LocalMonitor struct {
	remote  string
	log     *slog.Logger
	backoff backoff
	probe   time.Duration

	mu sync.Mutex
	c  client.Client // nil while disconnected
}

// NewLocalMonitor returns a monitor for remote (unix:PATH or tcp:HOST:PORT).
// It does not connect until Run.
func NewLocalMonitor(remote string, logger *slog.Logger) (*LocalMonitor, error) {
	if err := CheckRemote(remote); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &LocalMonitor{remote: remote, log: logger.With("remote", remote),
		backoff: backoff{minBackoff, maxBackoff}, probe: probeInterval}, nil
}

// Run connects and sends the state, then again after every change, until
// ctx is done, reconnecting with backoff. It returns ctx's error.
func (m *LocalMonitor) Run(ctx context.Context, states chan<- LocalState) error {
	return m.backoff.retry(ctx, m.log, func(ctx context.Context) (bool, error) {
		return m.session(ctx, states)
	})
}

func (m *LocalMonitor) session(ctx context.Context, states chan<- LocalState) (up bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dbModel, err := vswitchmodel.FullDatabaseModel()
	if err != nil {
		return false, fmt.Errorf("building Open_vSwitch model: %w", err)
	}
	dirty := newDirtyTables() // which tables changed matters not: the state is read whole
	c, err := dial(ctx, m.remote, "the local database", dbModel, m.log, dirty,
		[]model.Model{&vswitchmodel.OpenvSwitch{}, &vswitchmodel.Interface{}, &vswitchmodel.Bridge{}})
	if err != nil {
		return false, err
	}
	defer c.Close()
	lost := watch(ctx, c, m.probe)
	m.mu.Lock()
	m.c = c
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.c = nil
		m.mu.Unlock()
	}()
	m.log.Info("local database connected")
	dirty.mark(vswitchmodel.OpenvSwitchTable) // send the state once connected
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-lost:
			return true, err
		case <-dirty.notify:
			dirty.take()
			st, err := localSnapshot(ctx, c)
			if err != nil {
				return true, err
			}
			if !send(ctx, states, st) {
				return true, ctx.Err()
			}
		}
	}
}

func localSnapshot(ctx context.Context, c client.Client) (LocalState, error) {
	var st LocalState
	var roots []vswitchmodel.OpenvSwitch
	if err := c.List(ctx, &roots); err != nil {
		return st, fmt.Errorf("listing Open_vSwitch: %w", err)
	}
	if len(roots) > 0 {
		r := roots[0]
		st.SystemID, st.OVNRemote = r.ExternalIDs["system-id"], r.ExternalIDs["ovn-remote"]
		st.EncapType, st.EncapIP = r.ExternalIDs["ovn-encap-type"], r.ExternalIDs["ovn-encap-ip"]
		st.NextCfg = r.NextCfg
		st.Bridge = r.ExternalIDs["ovn-bridge"]
	}
	if st.Bridge == "" {
		st.Bridge = DefaultIntegrationBridge
	}
	var bridges []vswitchmodel.Bridge
	if err := c.List(ctx, &bridges); err != nil {
		return st, fmt.Errorf("listing Bridge: %w", err)
	}
	for _, b := range bridges {
		if b.Name == st.Bridge {
			st.BridgeUUID, st.BridgeExternalIDs = b.UUID, b.ExternalIDs
		}
	}
	var ifaces []vswitchmodel.Interface
	if err := c.List(ctx, &ifaces); err != nil {
		return st, fmt.Errorf("listing Interface: %w", err)
	}
	for _, i := range ifaces {
		li := LocalInterface{UUID: i.UUID, Name: i.Name, IfaceID: i.ExternalIDs["iface-id"], Type: i.Type}
		if i.Ofport != nil {
			li.OFPort = *i.Ofport
		}
		if i.OfportRequest != nil {
			li.OFPortRequest = *i.OfportRequest
		}
		if i.Error != nil {
			li.Error = *i.Error
		}
		if li.IfaceID == "" {
			st.Unbound = append(st.Unbound, li)
		} else {
			st.Interfaces = append(st.Interfaces, li)
		}
	}
	sort.Slice(st.Interfaces, func(a, b int) bool { return st.Interfaces[a].Name < st.Interfaces[b].Name })
	sort.Slice(st.Unbound, func(a, b int) bool { return st.Unbound[a].Name < st.Unbound[b].Name })
	return st, nil
}

// DefaultIntegrationBridge is the integration bridge ovn-controller uses
// when external_ids:ovn-bridge does not name one.
const DefaultIntegrationBridge = "br-int"

// WriteBridgeExternalIDs sets and removes keys of the external_ids of the
// bridge with UUID bridge, in one transaction, leaving the other keys as
// they are: ovsbpfd keeps its conntrack zone assignments there
// (ct-zone-<name>), as ovn-controller does.
func (m *LocalMonitor) WriteBridgeExternalIDs(ctx context.Context, bridge string, set map[string]string, remove []string) error {
	m.mu.Lock()
	c := m.c
	m.mu.Unlock()
	if c == nil {
		return ErrNotConnected
	}
	if bridge == "" {
		return errors.New("writing bridge external_ids: no integration bridge")
	}
	br := &vswitchmodel.Bridge{UUID: bridge}
	var mutations []model.Mutation
	if len(remove) > 0 || len(set) > 0 {
		// Delete by key first, so that a set replaces the old value.
		keys := append([]string{}, remove...)
		for k := range set {
			keys = append(keys, k)
		}
		mutations = append(mutations, model.Mutation{Field: &br.ExternalIDs, Mutator: libovsdb.MutateOperationDelete, Value: keys})
	}
	if len(set) > 0 {
		mutations = append(mutations, model.Mutation{Field: &br.ExternalIDs, Mutator: libovsdb.MutateOperationInsert, Value: set})
	}
	if len(mutations) == 0 {
		return nil
	}
	ops, err := c.Where(br).Mutate(br, mutations...)
	if err != nil {
		return fmt.Errorf("building the bridge external_ids update: %w", err)
	}
	res, err := c.Transact(ctx, ops...)
	if err != nil {
		return fmt.Errorf("writing bridge external_ids: %w", err)
	}
	if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
		return fmt.Errorf("writing bridge external_ids: %w", err)
	}
	return nil
}

// ErrNotConnected is returned by writes while the database is unreachable.
var ErrNotConnected = errors.New("not connected to the local database")

// Report writes what the switch did: each interface's ofport (-1 for one
// it could not attach), the error column of those in errs ("" clears it),
// and cur_cfg, which releases ovs-vsctl calls waiting for the switch to
// apply a change. Interfaces are named by UUID.
func (m *LocalMonitor) Report(ctx context.Context, ofports map[string]int, errs map[string]string, curCfg int) error {
	m.mu.Lock()
	c := m.c
	m.mu.Unlock()
	if c == nil {
		return ErrNotConnected
	}
	var ops []libovsdb.Operation
	for uuid, port := range ofports {
		p := port
		iface := &vswitchmodel.Interface{UUID: uuid, Ofport: &p}
		op, err := c.Where(iface).Update(iface, &iface.Ofport)
		if err != nil {
			return fmt.Errorf("building ofport update: %w", err)
		}
		ops = append(ops, op...)
	}
	for uuid, text := range errs {
		iface := &vswitchmodel.Interface{UUID: uuid}
		if text != "" {
			t := text
			iface.Error = &t
		}
		op, err := c.Where(iface).Update(iface, &iface.Error)
		if err != nil {
			return fmt.Errorf("building error update: %w", err)
		}
		ops = append(ops, op...)
	}
	var roots []vswitchmodel.OpenvSwitch
	if err := c.List(ctx, &roots); err != nil {
		return fmt.Errorf("listing Open_vSwitch: %w", err)
	}
	if len(roots) > 0 && roots[0].CurCfg != curCfg {
		root := &vswitchmodel.OpenvSwitch{UUID: roots[0].UUID, CurCfg: curCfg}
		op, err := c.Where(root).Update(root, &root.CurCfg)
		if err != nil {
			return fmt.Errorf("building cur_cfg update: %w", err)
		}
		ops = append(ops, op...)
	}
	if len(ops) == 0 {
		return nil
	}
	res, err := c.Transact(ctx, ops...)
	if err != nil {
		return fmt.Errorf("writing to the local database: %w", err)
	}
	if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
		return fmt.Errorf("writing to the local database: %w", err)
	}
	return nil
}
