package ovsdb

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/stdr"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/database/inmemory"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"
	"github.com/ovn-org/libovsdb/server"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/ovsdb/sbmodel"
)

func TestMain(m *testing.M) {
	// libovsdb's server package turns stdr's verbosity up to 5 when it is
	// loaded, which logs every message of every test; keep errors only.
	stdr.SetVerbosity(0)
	os.Exit(m.Run())
}

// memServer is libovsdb's in-memory OVSDB server with the Southbound
// schema, and a client that writes to it.
type memServer struct {
	sock string
	w    client.Client
}

// startMemServer serves an empty Southbound database on a unix socket until
// t ends.
func startMemServer(t *testing.T) *memServer {
	t.Helper()
	clientModel, err := sbmodel.FullDatabaseModel()
	require.NoError(t, err)
	dbModel, errs := model.NewDatabaseModel(sbmodel.Schema(), clientModel)
	require.Empty(t, errs)
	db := inmemory.NewDatabase(map[string]model.ClientDBModel{sbmodel.Schema().Name: clientModel})
	srv, err := server.NewOvsdbServer(db, dbModel)
	require.NoError(t, err)
	s := &memServer{sock: filepath.Join(t.TempDir(), "sb.sock")}
	served := make(chan error, 1)
	go func() { served <- srv.Serve("unix", s.sock) }()
	t.Cleanup(func() {
		srv.Close()
		require.NoError(t, <-served)
	})
	require.Eventually(t, srv.Ready, 5*time.Second, 5*time.Millisecond)

	lg := logr.FromSlogHandler(testLogger(t).Handler())
	s.w, err = client.NewOVSDBClient(clientModel, client.WithEndpoint(s.remote()), client.WithLogger(&lg))
	require.NoError(t, err)
	require.NoError(t, s.w.Connect(context.Background()))
	t.Cleanup(s.w.Close)
	return s
}

func (s *memServer) remote() string { return "unix:" + s.sock }

// transact runs the operations as one transaction and returns the UUIDs
// of the rows it inserted, by their named UUIDs (the models' UUID fields
// at the time the operations were built).
func (s *memServer) transact(t *testing.T, named []string, ops ...libovsdb.Operation) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := s.w.Transact(ctx, ops...)
	require.NoError(t, err)
	_, err = libovsdb.CheckOperationResults(res, ops)
	require.NoError(t, err)
	uuids := map[string]string{}
	i := 0
	for j, op := range ops {
		if op.Op == libovsdb.OperationInsert {
			require.Less(t, i, len(named), "more inserts than names")
			uuids[named[i]] = res[j].UUID.GoUUID
			i++
		}
	}
	return uuids
}

// insert builds insert operations for rows whose UUID fields hold named
// UUIDs, and runs them as one transaction.
func (s *memServer) insert(t *testing.T, rows ...model.Model) map[string]string {
	t.Helper()
	var named []string
	var ops []libovsdb.Operation
	for _, r := range rows {
		o, err := s.w.Create(r)
		require.NoError(t, err)
		ops = append(ops, o...)
		named = append(named, o[0].UUIDName)
	}
	return s.transact(t, named, ops...)
}

// update writes the given fields of row, found by its UUID.
func (s *memServer) update(t *testing.T, row model.Model, fields ...any) {
	t.Helper()
	ops, err := s.w.Where(row).Update(row, fields...)
	require.NoError(t, err)
	s.transact(t, nil, ops...)
}

// delete removes row, found by its UUID.
func (s *memServer) delete(t *testing.T, row model.Model) {
	t.Helper()
	ops, err := s.w.Where(row).Delete()
	require.NoError(t, err)
	s.transact(t, nil, ops...)
}

// proxy forwards connections on its own unix socket to a server's, so that
// a test can break them: cut closes them, as a server that goes away does;
// blackhole keeps them open but drops everything, as a hung server or a
// partitioned network does. New connections are forwarded normally.
type proxy struct {
	sock string
	ln   net.Listener

	mu    sync.Mutex
	conns []*proxied
}

type proxied struct {
	client, server net.Conn
	mu             sync.Mutex
	dropping       bool
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	p := &proxy{sock: filepath.Join(t.TempDir(), "proxy.sock")}
	var err error
	p.ln, err = net.Listen("unix", p.sock)
	require.NoError(t, err)
	t.Cleanup(func() {
		p.ln.Close()
		p.cut()
	})
	go func() {
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("unix", target)
			if err != nil {
				c.Close()
				continue
			}
			pc := &proxied{client: c, server: s}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			go pc.pump(c, s)
			go pc.pump(s, c)
		}
	}()
	return p
}

func (p *proxy) remote() string { return "unix:" + p.sock }

// pump copies from src to dst until either closes, dropping the data
// while the connection is blackholed.
func (pc *proxied) pump(src, dst net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		pc.mu.Lock()
		drop := pc.dropping
		pc.mu.Unlock()
		if n > 0 && !drop {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	src.Close()
	dst.Close()
}

// cut closes every connection made so far.
func (p *proxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, pc := range conns {
		pc.client.Close()
		pc.server.Close()
	}
}

// blackhole makes every connection made so far drop all traffic.
func (p *proxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		pc.mu.Lock()
		pc.dropping = true
		pc.mu.Unlock()
	}
}
