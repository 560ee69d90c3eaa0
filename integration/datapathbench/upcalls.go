package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ovsbpf/ovsbpf/internal/unixctl"
)

// The slow path's figures, on a running ovsbpfd: a VM sends frames to
// MAC addresses no port has, each a new flow (OVN drops them, and the drop
// is cached), first paced, for latency, then as fast as it can, for rate.

type upcallOpts struct {
	ctl, netns, iface string
	paced, burst      int
	pacedRate         int
}

func upcalls(o upcallOpts, out func(string, float64)) error {
	send, err := openSender(o.netns, o.iface)
	if err != nil {
		return err
	}
	defer send.close()

	before, err := handled(o.ctl)
	if err != nil {
		return err
	}
	gap := time.Second / time.Duration(o.pacedRate)
	for i := 0; i < o.paced; i++ {
		if err := send.frame(uint32(i)); err != nil {
			return err
		}
		time.Sleep(gap)
	}
	if err := waitHandled(o.ctl, before+o.paced, 5*time.Second); err != nil {
		return err
	}
	show, err := call(o.ctl, "upcall/show")
	if err != nil {
		return err
	}
	m := latencyRE.FindStringSubmatch(show)
	if m == nil {
		return fmt.Errorf("no handler latency in upcall/show:\n%s", show)
	}
	p50, _ := strconv.ParseFloat(m[1], 64)
	p99, _ := strconv.ParseFloat(m[3], 64)
	out("upcall_p50_us", p50)
	out("upcall_p99_us", p99)
	// The parts of it: waiting for a handler (the ring's wake-up),
	// deciding (the pipeline) and installing (the megaflow).
	for _, part := range []struct {
		name string
		re   *regexp.Regexp
	}{{"wait", waitRE}, {"decide", decideRE}, {"install", installRE}} {
		if m := part.re.FindStringSubmatch(show); m != nil {
			p50, _ := strconv.ParseFloat(m[1], 64)
			p99, _ := strconv.ParseFloat(m[2], 64)
			out("upcall_"+part.name+"_p50_us", p50)
			out("upcall_"+part.name+"_p99_us", p99)
		}
	}

	if o.burst == 0 {
		return nil
	}
	before, err = handled(o.ctl)
	if err != nil {
		return err
	}
	start := time.Now()
	for i := 0; i < o.burst; i++ {
		if err := send.frame(uint32(o.paced + i)); err != nil {
			return err
		}
	}
	// Rate: upcalls handled over the time from the first frame to the
	// last upcall handled (or the time out).
	var got int
	deadline := time.Now().Add(20 * time.Second)
	last := before
	lastChange := time.Now()
	for time.Now().Before(deadline) {
		n, err := handled(o.ctl)
		if err != nil {
			return err
		}
		if n != last {
			last, lastChange = n, time.Now()
		}
		got = n - before
		if got >= o.burst || time.Since(lastChange) > 500*time.Millisecond {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := lastChange.Sub(start).Seconds()
	out("upcalls_per_s", float64(got)/elapsed)
	out("upcall_burst_handled_pct", 100*float64(got)/float64(o.burst))
	return nil
}

var (
	latencyRE = regexp.MustCompile(`handler latency: p50 ([0-9.]+)us p90 ([0-9.]+)us p99 ([0-9.]+)us`)
	waitRE    = regexp.MustCompile(`waiting for a handler: p50 ([0-9.]+)us p99 ([0-9.]+)us`)
	decideRE  = regexp.MustCompile(`deciding \(pipeline\): p50 ([0-9.]+)us p99 ([0-9.]+)us`)
	installRE = regexp.MustCompile(`installing \(megaflow\): p50 ([0-9.]+)us p99 ([0-9.]+)us`)
	handledRE = regexp.MustCompile(`handled       : (\d+) upcalls`)
)

func call(ctl, cmd string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return unixctl.Call(ctx, ctl, cmd)
}

func handled(ctl string) (int, error) {
	show, err := call(ctl, "upcall/show")
	if err != nil {
		return 0, err
	}
	m := handledRE.FindStringSubmatch(show)
	if m == nil {
		return 0, fmt.Errorf("no handled count in upcall/show:\n%s", show)
	}
	return strconv.Atoi(m[1])
}

func waitHandled(ctl string, want int, timeout time.Duration) error {
	for end := time.Now().Add(timeout); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		n, err := handled(ctl)
		if err != nil {
			return err
		}
		if n >= want {
			return nil
		}
	}
	return fmt.Errorf("ovsbpfd did not handle %d upcalls within %s", want, timeout)
}

// sender writes frames from a VM's interface, from a thread inside the
// VM's namespace (the socket stays there once made).
type sender struct {
	fd  int
	to  *unix.SockaddrLinklayer
	buf []byte
}

func openSender(netns, iface string) (*sender, error) {
	s := &sender{}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer home.Close()
		f, err := os.Open("/run/netns/" + netns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		errc <- s.open(iface)
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	if err := <-errc; err != nil {
		return nil, fmt.Errorf("sending from %s in netns %s: %w", iface, netns, err)
	}
	return s, nil
}

func (s *sender) open(iface string) error {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return err
	}
	s.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return err
	}
	s.to = &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	// A UDP frame from the VM's own MAC and address; the destination MAC
	// is filled per frame.
	f := frame64()
	copy(f[6:12], ifi.HardwareAddr)
	s.buf = f
	return nil
}

// frame sends one frame to the made-up MAC 0a:bb:<i>.
func (s *sender) frame(i uint32) error {
	s.buf[0], s.buf[1] = 0x0a, 0xbb
	binary.BigEndian.PutUint32(s.buf[2:6], i)
	return unix.Sendto(s.fd, s.buf, 0, s.to)
}

func (s *sender) close() { unix.Close(s.fd) }
