// Package netns creates named network namespaces for tests and runs code
// inside them. Every namespace is deleted when the test ends, pass or
// fail, and nothing is created in the caller's own namespace.
package netns

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// NS is a named network namespace (ip netns).
type NS struct {
	Name string
}

// New creates a namespace named prefix-p<pid>-<random> with its loopback
// up and deletes it when t ends. A test process killed before its cleanup
// ran (a timeout, SIGKILL) leaves its namespaces behind; the pid in the
// name lets New delete those of processes that no longer exist first.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	removeOrphans(t)
	var b [3]byte
	rand.Read(b[:])
	ns := &NS{Name: fmt.Sprintf("%s-p%d-%s", prefix, os.Getpid(), hex.EncodeToString(b[:]))}
	if out, err := exec.Command("ip", "netns", "add", ns.Name).CombinedOutput(); err != nil {
		t.Fatalf("creating netns %s: %v: %s", ns.Name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
			t.Errorf("deleting netns %s: %v: %s", ns.Name, err, out)
		}
	})
	ns.MustRun(t, "ip", "link", "set", "lo", "up")
	return ns
}

// orphanName matches the names New gives, capturing the creator's pid.
var orphanName = regexp.MustCompile(`-p([0-9]+)-[0-9a-f]{6}$`)

// removeOrphans deletes namespaces New made in processes that have exited.
func removeOrphans(t testing.TB) {
	entries, err := os.ReadDir("/run/netns")
	if err != nil {
		return // none made yet
	}
	for _, e := range entries {
		m := orphanName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || pid <= 0 || unix.Kill(pid, 0) != unix.ESRCH {
			continue // alive, or not ours to judge
		}
		if out, err := exec.Command("ip", "netns", "del", e.Name()).CombinedOutput(); err != nil {
			t.Logf("deleting the orphaned netns %s: %v: %s", e.Name(), err, out)
			continue
		}
		t.Logf("deleted netns %s, left by exited process %d", e.Name(), pid)
	}
}

// Run runs a command inside the namespace and returns its combined output.
func (n *NS) Run(name string, args ...string) (string, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("netns %s: %s %s: %w: %s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// MustRun is Run that fails the test on error.
func (n *NS) MustRun(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Run(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Enter moves the calling thread into the namespace. The caller must have
// locked its goroutine to the thread and must never unlock it.
func (n *NS) Enter() error {
	f, err := os.Open("/run/netns/" + n.Name)
	if err != nil {
		return fmt.Errorf("opening netns %s: %w", n.Name, err)
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("entering netns %s: %w", n.Name, err)
	}
	return nil
}

// Do runs fn on a thread that is inside the namespace. Only fn's own
// goroutine is inside; goroutines it starts are not. The thread goes back
// to its own namespace afterwards: letting it die instead would fire the
// parent-death signal of any child process that thread once started.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- fmt.Errorf("opening this thread's netns: %w", err)
			runtime.UnlockOSThread()
			return
		}
		defer home.Close()
		if err := n.Enter(); err != nil {
			errc <- err
			runtime.UnlockOSThread()
			return
		}
		errc <- fn()
		if err := unix.Setns(int(home.Fd()), unix.CLONE_NEWNET); err != nil {
			return // leave the thread locked: it dies with this goroutine
		}
		runtime.UnlockOSThread()
	}()
	return <-errc
}
