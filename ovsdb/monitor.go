package ovsdb

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/model"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
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
	remote  string
	log     *slog.Logger
	backoff backoff
	probe   time.Duration
}

// NewSouthboundMonitor returns a monitor for remote (unix:PATH or
// tcp:HOST:PORT). It does not connect until Run.
func NewSouthboundMonitor(remote string, logger *slog.Logger) (*SouthboundMonitor, error) {
	if err := CheckRemote(remote); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &SouthboundMonitor{remote: remote, log: logger.With("remote", remote),
		backoff: backoff{minBackoff, maxBackoff}, probe: probeInterval}, nil
}

// Run connects, sends a full snapshot on updates, then a Change for every
// batch of row changes, until ctx is done. When the connection drops, or the
// server stops answering, it reconnects with exponential backoff and sends a
// new full snapshot, which replaces everything sent before. Changes that
// arrive while the receiver is busy are merged into one. Run returns ctx's
// error.
func (m *SouthboundMonitor) Run(ctx context.Context, updates chan<- Update) error {
	return m.backoff.retry(ctx, m.log, func(ctx context.Context) (bool, error) {
		return m.session(ctx, updates)
	})
}

// session runs one connection until it is lost or ctx is done. up reports
// whether the connection was established.
func (m *SouthboundMonitor) session(ctx context.Context, updates chan<- Update) (up bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tables := southboundTables()
	dirty := newDirtyTables()
	c, err := dialSouthbound(ctx, m.remote, m.log, dirty, tables)
	if err != nil {
		return false, err
	}
	defer c.Close()
	lost := watch(ctx, c, m.probe)

	v := newView(tables)
	sb, err := v.snapshot(c.Cache())
	if err != nil {
		return true, err
	}
	m.log.Info("southbound connected", "logical_flows", len(sb.LogicalFlows))
	if !send(ctx, updates, Update{Full: sb}) {
		return true, ctx.Err()
	}
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err := <-lost:
			return true, err
		case <-dirty.notify:
		}
		ch, err := v.diff(c.Cache(), dirty.take())
		if err != nil {
			return true, err
		}
		if ch != nil && !send(ctx, updates, Update{Change: ch}) {
			return true, ctx.Err()
		}
	}
}

// send delivers v on ch unless ctx ends first.
func send[T any](ctx context.Context, ch chan<- T, v T) bool {
	select {
	case ch <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// dirtyTables is a cache event handler that records which tables changed.
//
// The monitor reads changed rows from the cache rather than from the events
// because libovsdb drops events when its 65,536-entry event queue is full,
// as the initial contents of a large database can make it; the cache itself
// is always complete. Recording a table name keeps the handler cheap, so
// the queue drains as fast as it fills.
type dirtyTables struct {
	mu     sync.Mutex
	tables map[string]bool
	notify chan struct{} // has a value when tables is not empty
}

var _ cache.EventHandler = (*dirtyTables)(nil)

func newDirtyTables() *dirtyTables {
	return &dirtyTables{tables: map[string]bool{}, notify: make(chan struct{}, 1)}
}

func (d *dirtyTables) mark(table string) {
	d.mu.Lock()
	d.tables[table] = true
	d.mu.Unlock()
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// take returns the changed tables and starts a new set.
func (d *dirtyTables) take() map[string]bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.tables
	d.tables = map[string]bool{}
	return t
}

func (d *dirtyTables) OnAdd(table string, _ model.Model)       { d.mark(table) }
func (d *dirtyTables) OnUpdate(table string, _, _ model.Model) { d.mark(table) }
func (d *dirtyTables) OnDelete(table string, _ model.Model)    { d.mark(table) }
