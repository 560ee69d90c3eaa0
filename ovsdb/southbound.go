package ovsdb

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"slices"

	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/ovsdb/sbmodel"
)

// sbTable is one monitored Southbound table.
type sbTable struct {
	name  string
	model model.Model
	// add converts a row of the table (a pointer to its model) and appends
	// it to sb. It is nil for tables monitored for the daemon's later use
	// that ovn.Southbound has no place for yet.
	add func(sb *ovn.Southbound, row model.Model)
}

// rowOf adapts a conversion of one model type to sbTable.add.
func rowOf[T any](f func(sb *ovn.Southbound, r *T)) func(*ovn.Southbound, model.Model) {
	return func(sb *ovn.Southbound, m model.Model) { f(sb, m.(*T)) }
}

// southboundTables lists the tables a chassis monitors.
func southboundTables() []sbTable {
	return []sbTable{
		{ovn.TableLogicalFlow, &sbmodel.LogicalFlow{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.LogicalFlow) {
			sb.LogicalFlows = append(sb.LogicalFlows, convertLogicalFlow(r))
		})},
		{ovn.TableLogicalDPGroup, &sbmodel.LogicalDPGroup{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.LogicalDPGroup) {
			sb.DatapathGroups = append(sb.DatapathGroups, ovn.DatapathGroup{UUID: r.UUID, Datapaths: sortedSet(r.Datapaths)})
		})},
		{ovn.TableDatapathBinding, &sbmodel.DatapathBinding{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.DatapathBinding) {
			sb.Datapaths = append(sb.Datapaths, ovn.Datapath{UUID: r.UUID, TunnelKey: r.TunnelKey, ExternalIDs: strMap(r.ExternalIDs)})
		})},
		{ovn.TablePortBinding, &sbmodel.PortBinding{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.PortBinding) {
			sb.Ports = append(sb.Ports, ovn.Port{UUID: r.UUID, Name: r.LogicalPort, Type: r.Type, Datapath: r.Datapath,
				TunnelKey: r.TunnelKey, Options: strMap(r.Options), MAC: sortedSet(r.MAC), PortSecurity: sortedSet(r.PortSecurity),
				ExternalIDs: strMap(r.ExternalIDs)})
		})},
		{ovn.TableMulticastGroup, &sbmodel.MulticastGroup{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.MulticastGroup) {
			sb.MulticastGroups = append(sb.MulticastGroups, ovn.MulticastGroup{UUID: r.UUID, Name: r.Name,
				Datapath: r.Datapath, TunnelKey: r.TunnelKey, Ports: sortedSet(r.Ports)})
		})},
		{ovn.TableMACBinding, &sbmodel.MACBinding{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.MACBinding) {
			sb.MACBindings = append(sb.MACBindings, ovn.MACBinding{UUID: r.UUID, LogicalPort: r.LogicalPort,
				IP: r.IP, MAC: r.MAC, Datapath: r.Datapath})
		})},
		{ovn.TableAddressSet, &sbmodel.AddressSet{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.AddressSet) {
			sb.AddressSets = append(sb.AddressSets, ovn.AddressSet{UUID: r.UUID, Name: r.Name, Addresses: sortedSet(r.Addresses)})
		})},
		{ovn.TablePortGroup, &sbmodel.PortGroup{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.PortGroup) {
			sb.PortGroups = append(sb.PortGroups, ovn.PortGroup{UUID: r.UUID, Name: r.Name, Ports: sortedSet(r.Ports)})
		})},
		{ovn.TableLoadBalancer, &sbmodel.LoadBalancer{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.LoadBalancer) {
			sb.LoadBalancers = append(sb.LoadBalancers, ovn.LoadBalancer{UUID: r.UUID, Name: r.Name, VIPs: strMap(r.Vips),
				Protocol: deref(r.Protocol), Datapaths: sortedSet(r.Datapaths), DatapathGroup: deref(r.DatapathGroup),
				Options: strMap(r.Options)})
		})},
		{ovn.TableFDB, &sbmodel.FDB{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.FDB) {
			sb.FDBs = append(sb.FDBs, ovn.FDB{UUID: r.UUID, MAC: r.MAC, DPKey: r.DpKey, PortKey: r.PortKey})
		})},
		{ovn.TableDHCPOptions, &sbmodel.DHCPOptions{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.DHCPOptions) {
			sb.DHCPOptions = append(sb.DHCPOptions, ovn.DHCPOption{UUID: r.UUID, Name: r.Name, Code: r.Code, Type: r.Type})
		})},
		{ovn.TableDHCPv6Options, &sbmodel.DHCPv6Options{}, rowOf(func(sb *ovn.Southbound, r *sbmodel.DHCPv6Options) {
			sb.DHCPv6Options = append(sb.DHCPv6Options, ovn.DHCPOption{UUID: r.UUID, Name: r.Name, Code: r.Code, Type: r.Type})
		})},
		// Tunnels need these; ovn.Southbound does not carry them yet.
		{sbmodel.ChassisTable, &sbmodel.Chassis{}, nil},
		{sbmodel.EncapTable, &sbmodel.Encap{}, nil},
		{sbmodel.SBGlobalTable, &sbmodel.SBGlobal{}, nil},
	}
}

func convertLogicalFlow(r *sbmodel.LogicalFlow) ovn.LogicalFlow {
	return ovn.LogicalFlow{UUID: r.UUID, Datapath: deref(r.LogicalDatapath), DatapathGroup: deref(r.LogicalDpGroup),
		Pipeline: r.Pipeline, TableID: r.TableID, Priority: r.Priority, Match: r.Match, Actions: r.Actions,
		StageName: r.ExternalIDs["stage-name"], Source: r.ExternalIDs["source"]}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// sortedSet copies a column's set, sorted since OVSDB sets have no order, so that
// what the package delivers is deterministic and never shares memory with
// the client's cache. An empty set is nil.
func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// strMap copies a column's map; an empty map is nil.
func strMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// southboundModel returns the Southbound database model.
func southboundModel() (model.ClientDBModel, error) {
	m, err := sbmodel.FullDatabaseModel()
	if err != nil {
		return m, fmt.Errorf("building southbound model: %w", err)
	}
	return m, nil
}

// dialSouthbound connects to remote and monitors tables; see dial.
func dialSouthbound(ctx context.Context, remote string, logger *slog.Logger, h cache.EventHandler, tables []sbTable) (client.Client, error) {
	if err := CheckRemote(remote); err != nil {
		return nil, err
	}
	dbModel, err := southboundModel()
	if err != nil {
		return nil, err
	}
	models := make([]model.Model, len(tables))
	for i, t := range tables {
		models[i] = t.model
	}
	return dial(ctx, remote, "southbound", dbModel, logger, h, models)
}

// ReadSouthbound connects to remote (unix:PATH or tcp:HOST:PORT), waits for
// the contents of the tables a chassis needs, converts them and disconnects.
// ctx bounds the whole operation. Rows of each table are ordered by UUID.
func ReadSouthbound(ctx context.Context, remote string, logger *slog.Logger) (*ovn.Southbound, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	tables := southboundTables()
	c, err := dialSouthbound(ctx, remote, logger, nil, tables)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	v := newView(tables)
	sb, err := v.snapshot(c.Cache())
	if err != nil {
		return nil, fmt.Errorf("reading southbound %s: %w", remote, err)
	}
	logger.Debug("read southbound", "remote", remote, "logical_flows", len(sb.LogicalFlows),
		"datapaths", len(sb.Datapaths), "ports", len(sb.Ports))
	return sb, nil
}

// view is what a reader has delivered of a client's cache: for each table,
// the cached row objects by UUID. libovsdb replaces a cached object on every
// change to its row and never modifies one in place (RowsShallow's
// contract), so a row whose object differs from the delivered one has
// changed since.
type view struct {
	tables []sbTable
	rows   map[string]map[string]model.Model
}

func newView(tables []sbTable) *view {
	return &view{tables: tables, rows: map[string]map[string]model.Model{}}
}

// errNoCache is returned when the client lost its cache, which libovsdb
// drops on disconnection.
var errNoCache = fmt.Errorf("%w: client cache gone", errConnectionClosed)

// snapshot converts every delivered table of the cache and remembers what
// it delivered.
func (v *view) snapshot(tc *cache.TableCache) (*ovn.Southbound, error) {
	if tc == nil {
		return nil, errNoCache
	}
	sb := &ovn.Southbound{}
	for _, t := range v.tables {
		if t.add == nil {
			continue
		}
		rows := shallowRows(tc, t.name)
		for _, u := range slices.Sorted(maps.Keys(rows)) {
			t.add(sb, rows[u])
		}
		v.rows[t.name] = rows
	}
	return sb, nil
}

// diff returns what changed in the named tables since the last snapshot or
// diff, or nil if nothing did. Its cost is linear in the size of those
// tables.
func (v *view) diff(tc *cache.TableCache, tables map[string]bool) (*ovn.Change, error) {
	if tc == nil {
		return nil, errNoCache
	}
	ch := &ovn.Change{Deleted: map[string][]string{}}
	changed := false
	for _, t := range v.tables {
		if t.add == nil || !tables[t.name] {
			continue
		}
		rows, old := shallowRows(tc, t.name), v.rows[t.name]
		var updated, deleted []string
		for u, m := range rows {
			if old[u] != m {
				updated = append(updated, u)
			}
		}
		for u := range old {
			if _, ok := rows[u]; !ok {
				deleted = append(deleted, u)
			}
		}
		slices.Sort(updated)
		for _, u := range updated {
			t.add(&ch.Updated, rows[u])
		}
		if len(deleted) > 0 {
			slices.Sort(deleted)
			ch.Deleted[t.name] = deleted
		}
		changed = changed || len(updated) > 0 || len(deleted) > 0
		v.rows[t.name] = rows
	}
	if !changed {
		return nil, nil
	}
	return ch, nil
}

// shallowRows returns a table's cached rows, which are read-only.
func shallowRows(tc *cache.TableCache, table string) map[string]model.Model {
	rc := tc.Table(table)
	if rc == nil {
		return map[string]model.Model{}
	}
	return rc.RowsShallow()
}
