package ovntest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestStartTraceAndCleanup(t *testing.T) {
	var pids []int
	var dir string
	t.Run("env", func(t *testing.T) {
		e := Start(t)
		dir = e.Dir()
		e.NBCtl("ls-add", "sw0")
		e.NBCtl("lsp-add", "sw0", "p1", "--", "lsp-set-addresses", "p1", "00:00:00:00:00:01 10.0.0.1")
		e.NBCtl("lsp-add", "sw0", "p2", "--", "lsp-set-addresses", "p2", "00:00:00:00:00:02 10.0.0.2")
		e.Sync()
		if got := strings.TrimSpace(e.SBCtl("--bare", "--columns=logical_port", "find", "Port_Binding", "logical_port=p2")); got != "p2" {
			t.Fatalf("Port_Binding p2 not in the Southbound after Sync: %q", got)
		}
		out, err := e.Trace("--minimal", "sw0", `inport == "p1" && eth.src == 00:00:00:00:00:01 && eth.dst == 00:00:00:00:00:02 && ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64`)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, `output("p2");`) {
			t.Fatalf("ovn-trace did not deliver to p2:\n%s", out)
		}
		_, err = e.Trace("--minimal", "sw0", `inport == "p1" && tcp.dst ==`)
		if !errors.Is(err, ErrTraceParse) {
			t.Fatalf("a bad microflow: got %v, want ErrTraceParse", err)
		}
		for _, f := range []string{"ovsdb-server-nb.pid", "ovsdb-server-sb.pid", "ovn-northd.pid"} {
			b, err := os.ReadFile(filepath.Join(e.Dir(), f))
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatal(err)
			}
			pids = append(pids, pid)
		}
		nb := filepath.Join(t.TempDir(), "nb.db")
		if err := e.SnapshotNB(nb); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(nb); err != nil || !strings.Contains(string(b), "OVN_Northbound") {
			t.Fatalf("NB snapshot: %v %.100q", err, b)
		}
	})
	if len(pids) != 3 {
		t.Fatalf("got %d pids", len(pids))
	}
	for _, pid := range pids {
		// The daemons were our children and have been reaped, so the pid
		// is gone (or, improbably, reused by something else).
		if err := syscall.Kill(pid, 0); err == nil {
			if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); strings.HasPrefix(string(comm), "ovn") || strings.HasPrefix(string(comm), "ovsdb") {
				t.Errorf("daemon %d (%s) still runs after cleanup", pid, strings.TrimSpace(string(comm)))
			}
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after cleanup: %v", dir, err)
	}
}

// fakeTB records Fatalf instead of failing the real test.
type fakeTB struct {
	testing.TB
	mu    sync.Mutex
	fatal string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.fatal = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestMissingBinaryNamesPackage(t *testing.T) {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		Binary(f, "ovn-no-such-program")
	}()
	<-done
	if !strings.Contains(f.fatal, "apt-get install ovn-central") {
		t.Fatalf("message does not name the package: %q", f.fatal)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"ls-ps":                "ls-ps",
		"":                     "''",
		`inport == "p1"`:       `'inport == "p1"'`,
		"it's":                 `'it'\''s'`,
		"unix:/tmp/x/sb.sock":  "unix:/tmp/x/sb.sock",
		"--lb-dst=10.0.0.1:80": "--lb-dst=10.0.0.1:80",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestStatusOfRunningDaemon asks for a daemon's status while it runs and has
// written to stderr: exec's copying goroutine owns the buffer until the
// daemon exits, so status must not read it before then (go test -race
// failed here when it did), and shows it after.
func TestStatusOfRunningDaemon(t *testing.T) {
	ready := filepath.Join(t.TempDir(), "ready")
	d := &daemon{name: "sh", log: filepath.Join(t.TempDir(), "none.log")}
	if err := d.start(os.Environ(), []string{"sh", "-c", "echo complaint >&2; touch " + ready + "; exec sleep 30"}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.stop)
	for i := 0; ; i++ {
		if _, err := os.Stat(ready); err == nil {
			break
		}
		if i == 500 {
			t.Fatal("the child did not start within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := d.status(); !strings.Contains(s, "sh: running") || strings.Contains(s, "complaint") {
		t.Fatalf("status of a running daemon: want running, without its stderr:\n%s", s)
	}
	d.stop()
	if s := d.status(); !strings.Contains(s, "EXITED") || !strings.Contains(s, "stderr:\ncomplaint") {
		t.Fatalf("status of an exited daemon: want EXITED and its stderr:\n%s", s)
	}
}
