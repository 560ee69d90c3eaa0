package ovsdb

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/model"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/ovsdb/sbmodel"
)

// Update is one delivery of a SouthboundMonitor: either a full snapshot,
// after every (re)connection, or a batch of row changes.
type Update struct {
	Full   *ovn.Southbound
	Change *ovn.Change
}

// SouthboundMonitor keeps a connection to the Southbound database and
// delivers its contents and then its changes.
type SouthboundMonitor struct {
	remote     string
	log        *slog.Logger
	minBackoff time.Duration
	maxBackoff time.Duration
}

// NewSouthboundMonitor returns a monitor for remote (unix:PATH or
// tcp:HOST:PORT).
func NewSouthboundMonitor(remote string, logger *slog.Logger) (*SouthboundMonitor, error) {
	if err := CheckRemote(remote); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SouthboundMonitor{remote: remote, log: logger, minBackoff: 100 * time.Millisecond, maxBackoff: 10 * time.Second}, nil
}

// Run connects, sends a full snapshot on updates, then a Change for every
// batch of row changes, until ctx is done. When the connection drops it
// reconnects with exponential backoff and sends a new full snapshot. It
// returns ctx's error.
func (m *SouthboundMonitor) Run(ctx context.Context, updates chan<- Update) error {
	backoff := m.minBackoff
	for {
		err := m.session(ctx, updates)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.log.Warn("southbound connection lost, reconnecting", "remote", m.remote, "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, m.maxBackoff)
		if err == nil {
			backoff = m.minBackoff // the session was up; start over
		}
	}
}

// session runs one connection: it returns nil when an established
// connection drops, an error when connecting fails.
func (m *SouthboundMonitor) session(ctx context.Context, updates chan<- Update) error {
	p := &pending{notify: make(chan struct{}, 1)}
	c, err := connectWithHandler(ctx, m.remote, m.log, p.handler())
	if err != nil {
		return err
	}
	defer c.Close()
	sb, err := snapshot(ctx, c)
	if err != nil {
		return fmt.Errorf("reading southbound %s: %w", m.remote, err)
	}
	m.log.Info("southbound connected", "remote", m.remote, "logical_flows", len(sb.LogicalFlows))
	if !send(ctx, updates, Update{Full: sb}) {
		return ctx.Err()
	}
	disconnected := c.DisconnectNotify()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-disconnected:
			return nil
		case <-p.notify:
			if ch := p.take(); ch != nil && !send(ctx, updates, Update{Change: ch}) {
				return ctx.Err()
			}
		}
	}
}

func send(ctx context.Context, updates chan<- Update, u Update) bool {
	select {
	case updates <- u:
		return true
	case <-ctx.Done():
		return false
	}
}

// pending accumulates row events between deliveries.
type pending struct {
	mu     sync.Mutex
	ch     *ovn.Change
	notify chan struct{}
}

func (p *pending) take() *ovn.Change {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := p.ch
	p.ch = nil
	return ch
}

func (p *pending) add(f func(ch *ovn.Change)) {
	p.mu.Lock()
	if p.ch == nil {
		p.ch = &ovn.Change{Deleted: map[string][]string{}}
	}
	f(p.ch)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *pending) handler() cache.EventHandler {
	upsert := func(_ string, m model.Model) {
		p.add(func(ch *ovn.Change) { addRow(&ch.Updated, m) })
	}
	return &cache.EventHandlerFuncs{
		AddFunc:    upsert,
		UpdateFunc: func(table string, _, m model.Model) { upsert(table, m) },
		DeleteFunc: func(table string, m model.Model) {
			if uuid := rowUUID(m); uuid != "" {
				p.add(func(ch *ovn.Change) { ch.Deleted[table] = append(ch.Deleted[table], uuid) })
			}
		},
	}
}

// addRow converts a monitored row and appends it to sb.
func addRow(sb *ovn.Southbound, m model.Model) {
	switch r := m.(type) {
	case *sbmodel.LogicalFlow:
		sb.LogicalFlows = append(sb.LogicalFlows, convertLogicalFlow(r))
	case *sbmodel.LogicalDPGroup:
		sb.DatapathGroups = append(sb.DatapathGroups, convertDPGroup(r))
	case *sbmodel.DatapathBinding:
		sb.Datapaths = append(sb.Datapaths, convertDatapath(r))
	case *sbmodel.PortBinding:
		sb.Ports = append(sb.Ports, convertPort(r))
	case *sbmodel.MulticastGroup:
		sb.MulticastGroups = append(sb.MulticastGroups, convertMulticastGroup(r))
	case *sbmodel.MACBinding:
		sb.MACBindings = append(sb.MACBindings, convertMACBinding(r))
	case *sbmodel.AddressSet:
		sb.AddressSets = append(sb.AddressSets, convertAddressSet(r))
	case *sbmodel.PortGroup:
		sb.PortGroups = append(sb.PortGroups, convertPortGroup(r))
	case *sbmodel.LoadBalancer:
		sb.LoadBalancers = append(sb.LoadBalancers, convertLoadBalancer(r))
	case *sbmodel.FDB:
		sb.FDBs = append(sb.FDBs, convertFDB(r))
	case *sbmodel.DHCPOptions:
		sb.DHCPOptions = append(sb.DHCPOptions, ovn.DHCPOption{UUID: r.UUID, Name: r.Name, Code: r.Code, Type: r.Type})
	case *sbmodel.DHCPv6Options:
		sb.DHCPv6Options = append(sb.DHCPv6Options, ovn.DHCPOption{UUID: r.UUID, Name: r.Name, Code: r.Code, Type: r.Type})
	}
}

// rowUUID returns the UUID of a generated model: every one has a UUID
// field.
func rowUUID(m model.Model) string {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return ""
	}
	if f := v.Elem().FieldByName("UUID"); f.Kind() == reflect.String {
		return f.String()
	}
	return ""
}
