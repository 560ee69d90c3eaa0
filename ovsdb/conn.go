package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
)

// ErrBadRemote is returned for a remote address that is not unix:PATH or
// tcp:HOST:PORT.
var ErrBadRemote = errors.New("bad remote")

// errConnectionClosed is what a session ends with when the server closes
// the connection.
var errConnectionClosed = errors.New("connection closed")

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

// Connection defaults. A monitor probes an idle server as OVSDB peers do:
// an echo every probeInterval, and an answer due within 3*probeInterval.
const (
	probeInterval = 5 * time.Second
	minBackoff    = 100 * time.Millisecond
	maxBackoff    = 10 * time.Second
)

// dial connects to remote and monitors tables of dbModel. what names the
// database in errors ("southbound"). h, if not nil, is registered before the
// monitor starts, so it sees the initial rows too. When dial returns, the
// client's cache holds the tables' contents; the caller closes the client.
func dial(ctx context.Context, remote, what string, dbModel model.ClientDBModel, logger *slog.Logger,
	h cache.EventHandler, tables []model.Model) (client.Client, error) {
	if err := CheckRemote(remote); err != nil {
		return nil, err
	}
	// libovsdb logs through logr; send it to our handler one level quieter,
	// since it is chatty about normal disconnects.
	lg := logr.FromSlogHandler(logger.Handler()).V(1)
	c, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(remote), client.WithLogger(&lg))
	if err != nil {
		return nil, fmt.Errorf("creating %s client for %s: %w", what, remote, err)
	}
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connecting to %s %s: %w", what, remote, withCtxErr(ctx, err))
	}
	if h != nil {
		c.Cache().AddEventHandler(h)
	}
	opts := make([]client.MonitorOption, len(tables))
	for i, m := range tables {
		opts[i] = client.WithTable(m)
	}
	if _, err := c.Monitor(ctx, c.NewMonitor(opts...)); err != nil {
		c.Close()
		return nil, fmt.Errorf("monitoring %s %s: %w", what, remote, withCtxErr(ctx, err))
	}
	return c, nil
}

// withCtxErr returns err such that errors.Is finds ctx's error if ctx is
// done: libovsdb reports a timeout as text, which loses it.
func withCtxErr(ctx context.Context, err error) error {
	if ctx.Err() == nil || errors.Is(err, ctx.Err()) {
		return err
	}
	return fmt.Errorf("%w: %v", ctx.Err(), err)
}

// watch returns a channel that receives one error when c's connection is
// lost: the server closed it, or an echo went unanswered for 3*interval.
// It watches until ctx is done.
//
// The echo is also the backstop for libovsdb's disconnect notification,
// which is dropped when no one is receiving at that moment.
func watch(ctx context.Context, c client.Client, interval time.Duration) <-chan error {
	lost := make(chan error, 2)
	go func() {
		select {
		case <-c.DisconnectNotify():
			lost <- errConnectionClosed
		case <-ctx.Done():
		}
	}()
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			ectx, cancel := context.WithTimeout(ctx, 3*interval)
			err := c.Echo(ectx)
			cancel()
			if err != nil && ctx.Err() == nil {
				lost <- fmt.Errorf("echo: %w", err)
				return
			}
		}
	}()
	return lost
}

// backoff holds a monitor's reconnection policy.
type backoff struct {
	min, max time.Duration
}

// retry runs session until ctx is done. Between attempts it waits, doubling
// the wait after every failure up to b.max, and starting again from b.min
// after a session that was up. It returns ctx's error.
func (b backoff) retry(ctx context.Context, log *slog.Logger, session func(context.Context) (up bool, err error)) error {
	wait := b.min
	for {
		up, err := session(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if up {
			wait = b.min
			log.Warn("connection lost, reconnecting", "error", err, "retry_in", wait)
		} else {
			log.Warn("cannot connect, retrying", "error", err, "retry_in", wait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, b.max)
	}
}
