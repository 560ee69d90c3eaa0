package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/ovsdb/sbmodel"
)

// ErrBadRemote is returned for a remote address that is not unix:PATH or
// tcp:HOST:PORT.
var ErrBadRemote = errors.New("bad remote")

// CheckRemote validates an OVSDB remote address.
func CheckRemote(remote string) error {
	switch {
	case strings.HasPrefix(remote, "unix:") && len(remote) > len("unix:"):
		return nil
	case strings.HasPrefix(remote, "tcp:"):
		hostPort := strings.TrimPrefix(remote, "tcp:")
		if i := strings.LastIndexByte(hostPort, ':'); i > 0 && i < len(hostPort)-1 {
			return nil
		}
	}
	return fmt.Errorf("%w %q: want unix:PATH or tcp:HOST:PORT", ErrBadRemote, remote)
}

// southboundTables are the tables a chassis monitors, as models.
func southboundTables() []model.Model {
	return []model.Model{
		&sbmodel.LogicalFlow{}, &sbmodel.LogicalDPGroup{}, &sbmodel.DatapathBinding{},
		&sbmodel.PortBinding{}, &sbmodel.MulticastGroup{}, &sbmodel.MACBinding{},
		&sbmodel.AddressSet{}, &sbmodel.PortGroup{}, &sbmodel.LoadBalancer{}, &sbmodel.FDB{},
		&sbmodel.Chassis{}, &sbmodel.Encap{}, &sbmodel.DHCPOptions{}, &sbmodel.DHCPv6Options{},
	}
}

// connect opens a client to remote and monitors the Southbound tables a
// chassis needs. When it returns, the client's cache holds their contents.
func connect(ctx context.Context, remote string, logger *slog.Logger) (client.Client, error) {
	return connectWithHandler(ctx, remote, logger, nil)
}

// connectWithHandler is connect with h, if not nil, receiving every row
// event of the monitored tables, starting with the initial contents.
func connectWithHandler(ctx context.Context, remote string, logger *slog.Logger, h cache.EventHandler) (client.Client, error) {
	if err := CheckRemote(remote); err != nil {
		return nil, err
	}
	dbModel, err := sbmodel.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("building southbound model: %w", err)
	}
	// libovsdb logs through logr; send it to our slog handler, quieter by
	// one level, since it is chatty about normal reconnects.
	lg := logr.FromSlogHandler(logger.Handler()).V(1)
	c, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(remote), client.WithLogger(&lg))
	if err != nil {
		return nil, fmt.Errorf("creating southbound client for %s: %w", remote, err)
	}
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connecting to southbound %s: %w", remote, err)
	}
	if h != nil {
		c.Cache().AddEventHandler(h)
	}
	var opts []client.MonitorOption
	for _, m := range southboundTables() {
		opts = append(opts, client.WithTable(m))
	}
	if _, err := c.Monitor(ctx, c.NewMonitor(opts...)); err != nil {
		c.Close()
		return nil, fmt.Errorf("monitoring southbound %s: %w", remote, err)
	}
	return c, nil
}

// ReadSouthbound connects to remote, reads the tables a chassis needs, and
// disconnects. ctx bounds the whole operation.
func ReadSouthbound(ctx context.Context, remote string, logger *slog.Logger) (*ovn.Southbound, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	c, err := connect(ctx, remote, logger)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	sb, err := snapshot(ctx, c)
	if err != nil {
		return nil, fmt.Errorf("reading southbound %s: %w", remote, err)
	}
	logger.Debug("read southbound", "remote", remote, "logical_flows", len(sb.LogicalFlows),
		"datapaths", len(sb.Datapaths), "ports", len(sb.Ports))
	return sb, nil
}

// snapshot converts the client's cache into a Southbound.
func snapshot(ctx context.Context, c client.Client) (*ovn.Southbound, error) {
	sb := &ovn.Southbound{}
	for _, rows := range []any{
		&[]sbmodel.LogicalFlow{}, &[]sbmodel.LogicalDPGroup{}, &[]sbmodel.DatapathBinding{},
		&[]sbmodel.PortBinding{}, &[]sbmodel.MulticastGroup{}, &[]sbmodel.MACBinding{},
		&[]sbmodel.AddressSet{}, &[]sbmodel.PortGroup{}, &[]sbmodel.LoadBalancer{}, &[]sbmodel.FDB{},
		&[]sbmodel.DHCPOptions{}, &[]sbmodel.DHCPv6Options{},
	} {
		if err := c.List(ctx, rows); err != nil {
			return nil, fmt.Errorf("listing %T: %w", rows, err)
		}
		v := reflect.ValueOf(rows).Elem()
		for i := 0; i < v.Len(); i++ {
			addRow(sb, v.Index(i).Addr().Interface())
		}
	}
	return sb, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func convertLogicalFlow(r *sbmodel.LogicalFlow) ovn.LogicalFlow {
	return ovn.LogicalFlow{UUID: r.UUID, Datapath: deref(r.LogicalDatapath), DatapathGroup: deref(r.LogicalDpGroup),
		Pipeline: r.Pipeline, TableID: r.TableID, Priority: r.Priority, Match: r.Match, Actions: r.Actions,
		StageName: r.ExternalIDs["stage-name"], Source: r.ExternalIDs["source"]}
}

func convertDPGroup(r *sbmodel.LogicalDPGroup) ovn.DatapathGroup {
	return ovn.DatapathGroup{UUID: r.UUID, Datapaths: r.Datapaths}
}

func convertDatapath(r *sbmodel.DatapathBinding) ovn.Datapath {
	return ovn.Datapath{UUID: r.UUID, TunnelKey: r.TunnelKey, ExternalIDs: r.ExternalIDs}
}

func convertPort(r *sbmodel.PortBinding) ovn.Port {
	return ovn.Port{UUID: r.UUID, Name: r.LogicalPort, Type: r.Type, Datapath: r.Datapath, TunnelKey: r.TunnelKey,
		Options: r.Options, MAC: r.MAC, PortSecurity: r.PortSecurity, ExternalIDs: r.ExternalIDs}
}

func convertMulticastGroup(r *sbmodel.MulticastGroup) ovn.MulticastGroup {
	return ovn.MulticastGroup{UUID: r.UUID, Name: r.Name, Datapath: r.Datapath, TunnelKey: r.TunnelKey, Ports: r.Ports}
}

func convertMACBinding(r *sbmodel.MACBinding) ovn.MACBinding {
	return ovn.MACBinding{UUID: r.UUID, LogicalPort: r.LogicalPort, IP: r.IP, MAC: r.MAC, Datapath: r.Datapath}
}

func convertAddressSet(r *sbmodel.AddressSet) ovn.AddressSet {
	return ovn.AddressSet{UUID: r.UUID, Name: r.Name, Addresses: r.Addresses}
}

func convertPortGroup(r *sbmodel.PortGroup) ovn.PortGroup {
	return ovn.PortGroup{UUID: r.UUID, Name: r.Name, Ports: r.Ports}
}

func convertLoadBalancer(r *sbmodel.LoadBalancer) ovn.LoadBalancer {
	return ovn.LoadBalancer{UUID: r.UUID, Name: r.Name, VIPs: r.Vips, Protocol: deref(r.Protocol),
		Datapaths: r.Datapaths, DatapathGroup: deref(r.DatapathGroup), Options: r.Options}
}

func convertFDB(r *sbmodel.FDB) ovn.FDB {
	return ovn.FDB{UUID: r.UUID, MAC: r.MAC, DPKey: r.DpKey, PortKey: r.PortKey}
}
