// Package ovntest starts real OVN control-plane daemons for tests:
// ovsdb-server with the Northbound or Southbound schema and ovn-northd, from
// Debian's ovn-central and openvswitch packages. Each runs as a child
// process with its sockets, logs and databases in the test's temporary
// directory, and is stopped by t.Cleanup, whether the test passes or not.
//
// A missing binary fails the test with the package to install: in CI these
// tests must run, never skip.
package ovntest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binaries and the Debian packages that provide them.
var packages = map[string]string{
	"ovsdb-server": "openvswitch-switch", "ovsdb-tool": "openvswitch-common",
	"ovsdb-client": "openvswitch-common", "ovn-northd": "ovn-central",
	"ovn-nbctl": "ovn-central", "ovn-sbctl": "ovn-central", "ovn-trace": "ovn-central",
	"ovs-vsctl": "openvswitch-switch", "ovs-appctl": "openvswitch-common",
}

// RequireBinaries fails t unless every named program is on PATH.
func RequireBinaries(t testing.TB, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			t.Fatalf("%s not found: install Debian's %s (scripts/setup.sh does)", n, packages[n])
		}
	}
}

// Schema files installed by the Debian packages.
const (
	NBSchema = "/usr/share/ovn/ovn-nb.ovsschema"
	SBSchema = "/usr/share/ovn/ovn-sb.ovsschema"
	// VSwitchSchema is the local Open_vSwitch database's schema.
	VSwitchSchema = "/usr/share/openvswitch/vswitch.ovsschema"
)

// daemon is a child process the test owns.
type daemon struct {
	name string
	args []string
	log  string
	cmd  *exec.Cmd
}

func (d *daemon) start(t testing.TB) {
	t.Helper()
	d.cmd = exec.Command(d.args[0], d.args[1:]...)
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr bytes.Buffer
	d.cmd.Stderr = &stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", d.name, err)
	}
}

func (d *daemon) stop() {
	if d.cmd == nil || d.cmd.Process == nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = d.cmd.Process.Kill()
		<-done
	}
	d.cmd = nil
}

// logTail returns the last lines of the daemon's log, for failure messages.
func (d *daemon) logTail() string {
	b, err := os.ReadFile(d.log)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	return strings.Join(lines, "\n")
}

// Server is an ovsdb-server serving one database on a unix socket.
type Server struct {
	dir, name string
	db        string
	sock      string
	tcp       string // extra "ptcp:PORT:127.0.0.1" remote, if any
	d         *daemon
}

// Remote returns the server's OVSDB remote, unix:PATH.
func (s *Server) Remote() string { return "unix:" + s.sock }

// DBFile returns the path of the database file.
func (s *Server) DBFile() string { return s.db }

// StartServer creates a database from schema in a new directory under t's
// temporary directory and serves it on a unix socket.
func StartServer(t testing.TB, name, schema string) *Server {
	t.Helper()
	return startServer(t, name, schema, "")
}

// StartServerTCP is StartServer with the database also served on loopback
// TCP; TCPRemote returns its address.
func StartServerTCP(t testing.TB, name, schema string) *Server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free loopback port: %v", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return startServer(t, name, schema, fmt.Sprintf("ptcp:%d:127.0.0.1", port))
}

// TCPRemote returns the server's loopback TCP remote, tcp:127.0.0.1:PORT.
func (s *Server) TCPRemote() string {
	var port int
	fmt.Sscanf(s.tcp, "ptcp:%d:", &port)
	return fmt.Sprintf("tcp:127.0.0.1:%d", port)
}

func startServer(t testing.TB, name, schema, tcp string) *Server {
	t.Helper()
	RequireBinaries(t, "ovsdb-server", "ovsdb-tool", "ovsdb-client")
	dir := t.TempDir()
	s := &Server{dir: dir, name: name, db: filepath.Join(dir, name+".db"), sock: filepath.Join(dir, name+".sock"), tcp: tcp}
	if out, err := exec.Command("ovsdb-tool", "create", s.db, schema).CombinedOutput(); err != nil {
		t.Fatalf("ovsdb-tool create %s: %v: %s", schema, err, out)
	}
	s.Start(t)
	t.Cleanup(s.Stop)
	return s
}

// Start runs (or re-runs) the server and waits until it answers.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	args := []string{"ovsdb-server", "--remote=punix:" + s.sock, "--unixctl=" + filepath.Join(s.dir, s.name+".ctl"),
		"--log-file=" + filepath.Join(s.dir, s.name+".log"), "--no-chdir"}
	if s.tcp != "" {
		args = append(args, "--remote="+s.tcp)
	}
	s.d = &daemon{name: "ovsdb-server " + s.name, log: filepath.Join(s.dir, s.name+".log"), args: append(args, s.db)}
	s.d.start(t)
	waitFor(t, s.d, func() error {
		return exec.Command("ovsdb-client", "--timeout=1", "list-dbs", s.Remote()).Run()
	})
}

// Stop stops the server; its database file stays.
func (s *Server) Stop() { s.d.stop() }

func waitFor(t testing.TB, d *daemon, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become ready: %v\nlog:\n%s", d.name, err, d.logTail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Central is an OVN central node: Northbound and Southbound databases and
// ovn-northd between them.
type Central struct {
	NB, SB *Server
	northd *daemon
	dir    string
}

// StartCentral starts NB and SB ovsdb-servers and ovn-northd.
func StartCentral(t testing.TB) *Central {
	t.Helper()
	RequireBinaries(t, "ovn-northd", "ovn-nbctl", "ovn-sbctl", "ovn-trace")
	c := &Central{NB: StartServer(t, "nb", NBSchema), SB: StartServer(t, "sb", SBSchema), dir: t.TempDir()}
	c.northd = &daemon{name: "ovn-northd", log: filepath.Join(c.dir, "northd.log"), args: []string{
		"ovn-northd", "--ovnnb-db=" + c.NB.Remote(), "--ovnsb-db=" + c.SB.Remote(),
		"--unixctl=" + filepath.Join(c.dir, "northd.ctl"), "--log-file=" + filepath.Join(c.dir, "northd.log"), "--no-chdir",
	}}
	c.northd.start(t)
	t.Cleanup(c.northd.stop)
	c.Sync(t)
	return c
}

// run runs a control program and returns its standard output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (c *Central) ctl(t testing.TB, prog, remote string, args []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := run(ctx, nil, prog, append([]string{"--db=" + remote, "--timeout=20"}, args...)...)
	if err != nil {
		t.Fatalf("%v\nnorthd log:\n%s", err, c.northd.logTail())
	}
	return out
}

// NBCtl runs ovn-nbctl against the Northbound database.
func (c *Central) NBCtl(t testing.TB, args ...string) string {
	t.Helper()
	return c.ctl(t, "ovn-nbctl", c.NB.Remote(), args)
}

// SBCtl runs ovn-sbctl against the Southbound database.
func (c *Central) SBCtl(t testing.TB, args ...string) string {
	t.Helper()
	return c.ctl(t, "ovn-sbctl", c.SB.Remote(), args)
}

// Sync waits until ovn-northd has brought the Southbound up to date.
func (c *Central) Sync(t testing.TB) {
	t.Helper()
	c.NBCtl(t, "--wait=sb", "sync")
}

// Trace runs ovn-trace against the Southbound database.
func (c *Central) Trace(ctx context.Context, args ...string) (string, error) {
	out, err := run(ctx, nil, "ovn-trace", append([]string{"--db=" + c.SB.Remote()}, args...)...)
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
		return out, fmt.Errorf("ovn-trace crashed: %w", err)
	}
	return out, err
}

// NorthdLog returns the end of ovn-northd's log.
func (c *Central) NorthdLog() string { return c.northd.logTail() }

// VSCtl runs ovs-vsctl against the local database s and returns its
// output, failing t on error.
func (s *Server) VSCtl(t testing.TB, args ...string) string {
	t.Helper()
	RequireBinaries(t, "ovs-vsctl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := run(ctx, nil, "ovs-vsctl", append([]string{"--db=" + s.Remote(), "--timeout=20"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
