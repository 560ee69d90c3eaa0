// Package ovntest starts real OVN and OVS daemons for tests: an OVN central
// (a Northbound and a Southbound ovsdb-server and ovn-northd between them,
// Start) and single ovsdb-servers with any schema (StartServer, for the
// local Open_vSwitch database or a Southbound served over TCP), from
// Debian's ovn-central and openvswitch packages.
//
// Lifetime: Start creates every file (databases, unix sockets, unixctl
// sockets, pid files, logs) in a fresh directory from t.TempDir and runs the
// daemons as child processes of the test binary, never detached. t.Cleanup
// stops them (SIGTERM, then SIGKILL after a grace period) before the
// directory is removed, whether the test passed, failed or called
// t.FailNow. If the test binary itself dies, the kernel kills the children
// (Pdeathsig), so no daemon outlives a run.
//
// Nothing here listens on the network: every remote is a unix socket.
//
// A missing binary or schema fails the test with the Debian package to
// install; these tests run in CI and must never skip. Failures carry the
// tail of each daemon's log, which is where the reason usually is.
package ovntest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Schema files the Debian package ovn-central installs.
const (
	NBSchema = "/usr/share/ovn/ovn-nb.ovsschema"
	SBSchema = "/usr/share/ovn/ovn-sb.ovsschema"
)

// Timeouts. A control command on an idle, local OVSDB takes milliseconds;
// these bounds only turn a hang into a readable failure.
const (
	readyTimeout   = 15 * time.Second // a daemon starting to answer
	commandTimeout = 30 * time.Second // one ovn-nbctl/ovn-sbctl/ovn-trace run
	stopGrace      = 5 * time.Second  // SIGTERM to SIGKILL
	logTailLines   = 20
)

// programs maps each program the package runs to the Debian package that
// provides it. ovn-central depends on ovn-common and openvswitch-common,
// so installing ovn-central brings every one of them.
var programs = map[string]string{
	"ovsdb-server": "openvswitch-common",
	"ovsdb-tool":   "openvswitch-common",
	"ovsdb-client": "openvswitch-common",
	"ovn-northd":   "ovn-central",
	"ovn-nbctl":    "ovn-common",
	"ovn-sbctl":    "ovn-common",
	"ovn-trace":    "ovn-common",
	"ovs-vsctl":    "openvswitch-switch",
	"ovs-appctl":   "openvswitch-common",
}

// Binary returns the absolute path of one of the OVN/OVS programs this
// package knows, or fails t naming the package to install. ovsdb-server
// lives in /usr/sbin, which a non-root PATH often lacks, so the usual
// directories are searched after PATH.
func Binary(t testing.TB, name string) string {
	t.Helper()
	p, err := lookBinary(name)
	if err != nil {
		pkg := programs[name]
		if pkg == "" {
			pkg = "ovn-central"
		}
		t.Fatalf("ovntest: %s not found (%v): apt-get install %s (scripts/setup.sh does)", name, err, pkg)
	}
	return p
}

func lookBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("not on PATH nor in /usr/sbin, /usr/bin")
}

// RequirePrograms fails t unless every OVN/OVS program Start uses, and
// both schemas, are installed. Start calls it; call it directly to check
// up front.
func RequirePrograms(t testing.TB) {
	t.Helper()
	for _, name := range []string{"ovsdb-server", "ovsdb-tool", "ovsdb-client", "ovn-northd", "ovn-nbctl", "ovn-sbctl", "ovn-trace"} {
		Binary(t, name)
	}
	for _, s := range []string{NBSchema, SBSchema} {
		if _, err := os.Stat(s); err != nil {
			t.Fatalf("ovntest: schema %s missing (%v): install it with `apt-get install ovn-central`", s, err)
		}
	}
}

// daemon is one child process the test owns.
type daemon struct {
	name string
	log  string
	cmd  *exec.Cmd

	stderr bytes.Buffer  // what it wrote before its log file took over
	done   chan struct{} // closed when it has exited
	err    error         // its exit status, valid after done
}

func (d *daemon) start(env []string, args []string) error {
	d.cmd = exec.Command(args[0], args[1:]...)
	d.cmd.Env = env
	d.cmd.Stdout = &d.stderr
	d.cmd.Stderr = &d.stderr
	// Die with the test binary even if it is killed (go test -timeout).
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", d.name, err)
	}
	d.done = make(chan struct{})
	go func() {
		d.err = d.cmd.Wait()
		close(d.done)
	}()
	return nil
}

// exited reports whether the daemon has stopped, and how.
func (d *daemon) exited() (bool, error) {
	if d.done == nil {
		return false, nil
	}
	select {
	case <-d.done:
		return true, d.err
	default:
		return false, nil
	}
}

func (d *daemon) stop() {
	if d.done == nil {
		return
	}
	if ok, _ := d.exited(); ok {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(stopGrace):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// status is one line on the daemon's state, and the tail of its log.
func (d *daemon) status() string {
	state := "running"
	if ok, err := d.exited(); ok {
		state = fmt.Sprintf("EXITED (%v)", err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "--- %s: %s; log %s\n", d.name, state, d.log)
	// Read stderr only once the daemon has exited: until then exec's copying
	// goroutine writes the buffer, and cmd.Wait returning (before done is
	// closed) is what orders its last write before this read.
	if state != "running" {
		if s := strings.TrimSpace(d.stderr.String()); s != "" {
			fmt.Fprintf(&b, "stderr:\n%s\n", s)
		}
	}
	b.WriteString(tail(d.log, logTailLines))
	return b.String()
}

func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)\n", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n") + "\n"
}

// Env is a running OVN central: NB and SB databases and ovn-northd.
type Env struct {
	t   testing.TB
	dir string
	env []string // environment of every child: run and log directories point into dir

	nbDB, sbDB     string
	nbSock, sbSock string
	noNorthd       bool

	mu          sync.Mutex
	daemons     []*daemon   // in start order
	statusShown atomic.Bool // a failure message carried Status already
}

// Options change what Start runs.
type Options struct {
	// NoNorthd starts the two databases only, for tests that write the
	// Southbound by hand (northd would replace their logical flows).
	// Sync then fails.
	NoNorthd bool
}

// Start creates the NB and SB databases, starts their ovsdb-servers and
// ovn-northd, and returns once northd has processed the empty Northbound.
// Everything is stopped and removed by t.Cleanup.
func Start(t testing.TB) *Env {
	t.Helper()
	return StartWith(t, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, opts Options) *Env {
	t.Helper()
	RequirePrograms(t)
	e := newEnv(t)
	e.noNorthd = opts.NoNorthd
	e.nbDB, e.nbSock = e.startDB("nb", NBSchema)
	e.sbDB, e.sbSock = e.startDB("sb", SBSchema)
	if !opts.NoNorthd {
		e.startNorthd()
		e.Sync()
	}
	return e
}

// newEnv returns an Env with its directory and clean-up, no daemons yet.
func newEnv(t testing.TB) *Env {
	t.Helper()
	e := &Env{t: t, dir: t.TempDir()}
	// Unix socket paths must fit in sun_path (108 bytes). t.TempDir is
	// short enough unless TMPDIR is deep; then use a short directory.
	if len(filepath.Join(e.dir, "ovnnb_db.sock")) > 100 {
		d, err := os.MkdirTemp("/tmp", "ovntest")
		if err != nil {
			t.Fatalf("ovntest: %v", err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		e.dir = d
	}
	e.env = childEnv(e.dir)
	// Cleanups run last registered first: show the daemons' state (if the
	// test failed and no failure message showed it yet), then stop them,
	// then t.TempDir removes the directory.
	t.Cleanup(e.stopAll)
	t.Cleanup(func() {
		if t.Failed() && !e.statusShown.Load() {
			t.Logf("ovntest: daemons at the end of the failed test (dir %s):\n%s", e.dir, e.Status())
		}
	})
	return e
}

// childEnv is the environment for OVN programs: the caller's, with every
// OVS/OVN run, log and database directory inside dir (Debian's
// /var/run/openvswitch may not exist) and no ovn-nbctl daemon mode.
func childEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "OVN_NB_DAEMON", "OVN_SB_DAEMON", "OVN_NB_DB", "OVN_SB_DB",
			"OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR":
			continue
		}
		env = append(env, kv)
	}
	for _, k := range []string{"OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR"} {
		env = append(env, k+"="+dir)
	}
	return env
}

// Dir returns the directory holding the databases, sockets and logs.
func (e *Env) Dir() string { return e.dir }

// NBRemote returns the Northbound database's remote, unix:PATH.
func (e *Env) NBRemote() string { return "unix:" + e.nbSock }

// SBRemote returns the Southbound database's remote, unix:PATH.
func (e *Env) SBRemote() string { return "unix:" + e.sbSock }

// NBDBFile and SBDBFile return the paths of the database files the
// servers write. Use SnapshotNB/SnapshotSB for a consistent copy.
func (e *Env) NBDBFile() string { return e.nbDB }
func (e *Env) SBDBFile() string { return e.sbDB }

func (e *Env) startDB(name, schema string) (dbFile, sock string) {
	t := e.t
	t.Helper()
	dbFile = filepath.Join(e.dir, "ovn"+name+"_db.db")
	sock = filepath.Join(e.dir, "ovn"+name+"_db.sock")
	out, err := e.run(context.Background(), "ovsdb-tool", "create", dbFile, schema)
	if err != nil {
		t.Fatalf("ovntest: creating the %s database: %v\n%s", strings.ToUpper(name), err, out)
	}
	e.serveDB(name, dbFile, sock)
	return dbFile, sock
}

// serveDB runs ovsdb-server on dbFile at sock and waits until it answers.
func (e *Env) serveDB(name, dbFile, sock string, extraRemotes ...string) {
	t := e.t
	t.Helper()
	label := strings.ToUpper(name)
	if name != "nb" && name != "sb" {
		label = name
	}
	d := &daemon{name: "ovsdb-server (" + label + ")", log: filepath.Join(e.dir, "ovsdb-server-"+name+".log")}
	args := []string{Binary(t, "ovsdb-server"),
		"--remote=punix:" + sock,
		"--unixctl=" + filepath.Join(e.dir, "ovsdb-server-"+name+".ctl"),
		"--pidfile=" + filepath.Join(e.dir, "ovsdb-server-"+name+".pid"),
		"--log-file=" + d.log,
		"-vconsole:warn",
		"--no-chdir"}
	for _, r := range extraRemotes {
		args = append(args, "--remote="+r)
	}
	e.launch(d, append(args, dbFile)...)
	e.waitReady(d, func(ctx context.Context) error {
		_, err := e.run(ctx, "ovsdb-client", "--timeout=1", "list-dbs", "unix:"+sock)
		return err
	})
}

func (e *Env) startNorthd() {
	t := e.t
	t.Helper()
	d := &daemon{name: "ovn-northd", log: filepath.Join(e.dir, "ovn-northd.log")}
	e.launch(d,
		Binary(t, "ovn-northd"),
		"--ovnnb-db="+e.NBRemote(),
		"--ovnsb-db="+e.SBRemote(),
		"--unixctl="+filepath.Join(e.dir, "ovn-northd.ctl"),
		"--pidfile="+filepath.Join(e.dir, "ovn-northd.pid"),
		"--log-file="+d.log,
		"-vconsole:warn",
		"--no-chdir")
}

func (e *Env) launch(d *daemon, args ...string) {
	e.t.Helper()
	if err := d.start(e.env, args); err != nil {
		e.t.Fatalf("ovntest: %v", err)
	}
	e.mu.Lock()
	e.daemons = append(e.daemons, d)
	e.mu.Unlock()
}

// waitReady polls ready until it succeeds, the daemon exits, or the
// ready timeout passes.
func (e *Env) waitReady(d *daemon, ready func(context.Context) error) {
	e.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err := ready(ctx)
		cancel()
		if err == nil {
			return
		}
		if ok, _ := d.exited(); ok {
			e.t.Fatalf("ovntest: %s exited while starting: %v\n%s", d.name, err, e.Status())
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("ovntest: %s did not answer within %v: %v\n%s", d.name, readyTimeout, err, e.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RestartSB stops the Southbound ovsdb-server and starts it again on the
// same database and socket, as a reconnecting client sees a server restart.
func (e *Env) RestartSB() {
	e.t.Helper()
	e.mu.Lock()
	var sb *daemon
	for _, d := range e.daemons {
		if d.name == "ovsdb-server (SB)" {
			sb = d
		}
	}
	e.mu.Unlock()
	if sb == nil {
		e.t.Fatalf("ovntest: no Southbound server to restart")
	}
	sb.stop()
	e.serveDB("sb", e.sbDB, e.sbSock)
}

// stopAll stops the daemons, last started first.
func (e *Env) stopAll() {
	e.mu.Lock()
	ds := append([]*daemon(nil), e.daemons...)
	e.mu.Unlock()
	for i := len(ds) - 1; i >= 0; i-- {
		ds[i].stop()
	}
}

// Status returns, for every daemon, whether it still runs and the tail of
// its log: the thing to read when a command failed.
func (e *Env) Status() string {
	e.statusShown.Store(true)
	e.mu.Lock()
	ds := append([]*daemon(nil), e.daemons...)
	e.mu.Unlock()
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.status())
	}
	return b.String()
}

// run runs one of the known programs with the environment's variables,
// bounded by commandTimeout, and returns its standard output. On failure
// the error carries the command line and its standard error.
func (e *Env) run(ctx context.Context, name string, args ...string) (string, error) {
	path, err := lookBinary(name)
	if err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = e.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (timed out after %v)", err, commandTimeout)
	}
	if err != nil {
		return stdout.String(), &CommandError{Args: append([]string{name}, args...), Err: err, Stderr: stderr.String()}
	}
	return stdout.String(), nil
}

// CommandError is a control program that failed.
type CommandError struct {
	Args   []string // program and arguments
	Err    error    // exit status or start error
	Stderr string
}

func (c *CommandError) Error() string {
	return fmt.Sprintf("%s: %v: %s", shellJoin(c.Args), c.Err, strings.TrimSpace(c.Stderr))
}

func (c *CommandError) Unwrap() error { return c.Err }

// ctl runs a control program and fails the test on error, with the
// daemons' state.
func (e *Env) ctl(name string, args []string) string {
	e.t.Helper()
	out, err := e.run(context.Background(), name, args...)
	if err != nil {
		e.t.Fatalf("ovntest: %v\n%s", err, e.Status())
	}
	return out
}

// NBCtl runs ovn-nbctl on the Northbound database and returns its output;
// a failure fails the test.
func (e *Env) NBCtl(args ...string) string {
	e.t.Helper()
	return e.ctl("ovn-nbctl", append([]string{"--db=" + e.NBRemote(), "--timeout=20"}, args...))
}

// SBCtl runs ovn-sbctl on the Southbound database and returns its output;
// a failure fails the test.
func (e *Env) SBCtl(args ...string) string {
	e.t.Helper()
	return e.ctl("ovn-sbctl", append([]string{"--db=" + e.SBRemote(), "--timeout=20"}, args...))
}

// Sync waits until ovn-northd has brought the Southbound database up to
// date with the Northbound (ovn-nbctl --wait=sb sync).
func (e *Env) Sync() {
	e.t.Helper()
	if e.noNorthd {
		e.t.Fatalf("ovntest: Sync without ovn-northd (started with NoNorthd)")
	}
	e.NBCtl("--wait=sb", "sync")
}

// ErrTraceParse is returned by Trace when ovn-trace rejected the
// microflow: a bug in the caller's microflow, never in the datapath.
var ErrTraceParse = errors.New("ovn-trace could not parse the microflow")

// Trace runs ovn-trace --db=SB with args and returns its standard output.
// It does not fail the test: the caller decides. The error wraps
// ErrTraceParse when ovn-trace reported "error parsing flow", and is a
// *CommandError for any other failure (including a crash).
func (e *Env) Trace(args ...string) (string, error) {
	out, err := e.run(context.Background(), "ovn-trace", append([]string{"--db=" + e.SBRemote()}, args...)...)
	var ce *CommandError
	switch {
	case errors.As(err, &ce) && strings.Contains(ce.Stderr, "error parsing flow"):
		return out, fmt.Errorf("%w: %w", ErrTraceParse, err)
	case strings.Contains(out, "error parsing flow"):
		return out, fmt.Errorf("%w: %s", ErrTraceParse, firstLineWith(out, "error parsing flow"))
	}
	return out, err
}

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

// Crashed reports whether err is a program killed by a signal, as
// ovn-trace is when one of its assertions fails (SIGABRT).
func Crashed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled()
}

// snapshot writes a standalone, consistent copy of the NB or SB database
// to path (ovsdb-client backup), which ovsdb-server can serve later without
// northd.
func (e *Env) snapshot(remote, db, path string) error {
	out, err := e.run(context.Background(), "ovsdb-client", "backup", remote, db)
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// SnapshotNB writes a consistent copy of the Northbound database to path.
func (e *Env) SnapshotNB(path string) error {
	return e.snapshot(e.NBRemote(), "OVN_Northbound", path)
}

// SnapshotSB writes a consistent copy of the Southbound database to path.
func (e *Env) SnapshotSB(path string) error {
	return e.snapshot(e.SBRemote(), "OVN_Southbound", path)
}

// shellJoin quotes args for a shell, for messages a reader can paste.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = ShellQuote(a)
	}
	return strings.Join(q, " ")
}

// ShellQuote quotes s for a POSIX shell when it needs it.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
