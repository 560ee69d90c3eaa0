package ovntest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// VSwitchSchema is the local Open_vSwitch database's schema.
const VSwitchSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// RequireBinaries fails t unless every named program is installed.
func RequireBinaries(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		Binary(t, n)
	}
}

// Server is one ovsdb-server serving one database on a unix socket (and,
// from StartServerTCP, on loopback TCP too). It runs in an Env of its own,
// with the same lifetime rules.
type Server struct {
	env        *Env
	name       string
	db, sock   string
	tcp        string // "ptcp:PORT:127.0.0.1", or ""
	tcpAddress string
}

// StartServer creates a database from schema and serves it on a unix
// socket until t ends.
func StartServer(t testing.TB, name, schema string) *Server {
	t.Helper()
	return startServer(t, name, schema, false)
}

// StartServerTCP is StartServer with the database also served on a free
// loopback TCP port; TCPRemote returns it.
func StartServerTCP(t testing.TB, name, schema string) *Server {
	t.Helper()
	return startServer(t, name, schema, true)
}

func startServer(t testing.TB, name, schema string, tcp bool) *Server {
	t.Helper()
	RequireBinaries(t, "ovsdb-server", "ovsdb-tool", "ovsdb-client")
	if _, err := os.Stat(schema); err != nil {
		t.Fatalf("ovntest: schema %s missing (%v): run scripts/setup.sh", schema, err)
	}
	e := newEnv(t)
	s := &Server{env: e, name: name, db: filepath.Join(e.dir, name+".db"), sock: filepath.Join(e.dir, name+".sock")}
	if tcp {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("ovntest: finding a free loopback port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		s.tcp = fmt.Sprintf("ptcp:%d:127.0.0.1", port)
		s.tcpAddress = fmt.Sprintf("tcp:127.0.0.1:%d", port)
	}
	if out, err := e.run(context.Background(), "ovsdb-tool", "create", s.db, schema); err != nil {
		t.Fatalf("ovntest: creating %s from %s: %v\n%s", s.db, schema, err, out)
	}
	s.Start(t)
	return s
}

// Remote returns the server's unix remote, unix:PATH.
func (s *Server) Remote() string { return "unix:" + s.sock }

// TCPRemote returns the loopback TCP remote of a StartServerTCP server.
func (s *Server) TCPRemote() string { return s.tcpAddress }

// DBFile returns the path of the database file.
func (s *Server) DBFile() string { return s.db }

// Start runs (or runs again, after Stop) the server and waits until it
// answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	var extra []string
	if s.tcp != "" {
		extra = append(extra, s.tcp)
	}
	s.env.serveDB(s.name, s.db, s.sock, extra...)
}

// Stop stops the server; its database file stays.
func (s *Server) Stop() { s.env.stopAll() }

// VSCtl runs ovs-vsctl against the server (a local Open_vSwitch database)
// and returns its output; a failure fails t.
func (s *Server) VSCtl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := s.env.run(context.Background(), "ovs-vsctl", append([]string{"--db=" + s.Remote(), "--timeout=20"}, args...)...)
	if err != nil {
		t.Fatalf("ovntest: %v\n%s", err, s.env.Status())
	}
	return strings.TrimRight(out, "\n") + "\n"
}
