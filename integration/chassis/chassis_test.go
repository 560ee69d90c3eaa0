// Package chassis tests a whole ovsbpf chassis: ovsbpfd in a network
// namespace with VMs as namespaces, a real ovn-northd and ovsdb-servers,
// and traffic through the eBPF datapath.
package chassis

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/netns"
	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// The binaries under test, built once by TestMain.
var ovsbpfctl, ovsbpfd string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ovsbpf-chassis-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ovsbpfctl, ovsbpfd = filepath.Join(dir, "ovsbpfctl"), filepath.Join(dir, "ovsbpfd")
	for bin, pkg := range map[string]string{ovsbpfctl: "./cmd/ovsbpfctl", ovsbpfd: "./cmd/ovsbpfd"} {
		args := []string{"build", "-o", bin}
		if raceBuild {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, pkg)...)
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// chassis is one ovsbpf chassis under test: a network namespace with
// ovsbpfd in it, a local Open_vSwitch database, and VMs as namespaces
// whose eth0 is the peer of a tap-like veth in the chassis.
type chassis struct {
	ns      *netns.NS
	db      *ovntest.Server
	control string
	log     string
	pinPath string // --pin-path
	vms     map[string]*vm
	daemon  *daemon
}

// daemon is one run of ovsbpfd.
type daemon struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
}

type vm struct {
	ns   *netns.NS
	mac  net.HardwareAddr
	ip   net.IP
	host string // the chassis-side interface
}

// startChassis starts ovsbpfd in a new chassis namespace, reading the
// local database db and the Southbound sb. pinPath is its --pin-path.
func startChassis(t *testing.T, sbRemote, pinPath string) *chassis {
	ovntest.RequireBinaries(t, "ovs-vsctl", "ovs-appctl")
	dir := t.TempDir()
	ch := &chassis{ns: netns.New(t, "ovsbpf-chassis"), db: ovntest.StartServer(t, "conf", ovntest.VSwitchSchema),
		control: filepath.Join(dir, "ovsbpfd.ctl"), log: filepath.Join(dir, "ovsbpfd.log"), pinPath: pinPath, vms: map[string]*vm{}}
	ch.db.VSCtl(t, "--no-wait", "init")
	ch.db.VSCtl(t, "--no-wait", "set", "Open_vSwitch", ".", "external_ids:system-id=chassis-1", "external_ids:ovn-remote="+sbRemote)
	t.Cleanup(func() {
		// Runs after every run of ovsbpfd has stopped (cleanups run in
		// reverse). Under -race the detector writes its reports to the
		// daemon's stderr, which is the log, and lets the daemon run on.
		if b, _ := os.ReadFile(ch.log); bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			_, report, _ := bytes.Cut(b, []byte("==================\nWARNING: DATA RACE"))
			t.Errorf("ovsbpfd reported a data race:\n%.6000s", report)
		}
		if t.Failed() {
			t.Logf("ovsbpfd log:\n%s", tail(ch.log, 80))
		}
	})
	ch.start(t)
	return ch
}

// start runs ovsbpfd, appending to the chassis' log, and waits for its
// control socket.
func (ch *chassis) start(t *testing.T) {
	logf, err := os.OpenFile(ch.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command("ip", "netns", "exec", ch.ns.Name, ovsbpfd, "--db="+ch.db.Remote(), "--unixctl="+ch.control,
		"--pin-path="+ch.pinPath, "--log-level=debug", "--handlers=2")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	d := &daemon{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(d.exited) }()
	ch.daemon = d
	t.Cleanup(func() { ch.stop(t, d) })
	require.Eventually(t, func() bool {
		_, err := ch.appctl("list-commands")
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "ovsbpfd's control socket; log:\n%s", tail(ch.log, 40))
}

// stop stops a run of ovsbpfd with SIGTERM, as a service manager would:
// pinned forwarding state stays.
func (ch *chassis) stop(t *testing.T, d *daemon) {
	if d.stopped {
		return
	}
	d.stopped = true
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
		t.Errorf("ovsbpfd did not stop on SIGTERM within 5 s")
	}
}

func tail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// appctl runs a control command with the stock ovs-appctl.
func (ch *chassis) appctl(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ovs-appctl", append([]string{"-t", ch.control}, args...)...).CombinedOutput()
	return string(out), err
}

func (ch *chassis) mustAppctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ch.appctl(args...)
	require.NoError(t, err, out)
	return out
}

// addVM creates a VM namespace with eth0 at mac and ip/24, its host side
// named host in the chassis, and binds it to logical port lport with
// ovs-vsctl, as a CMS would.
func (ch *chassis) addVM(t *testing.T, lport, host, mac, ip string) *vm {
	v := &vm{ns: netns.AddVM(t, ch.ns, host), host: host}
	v.mac, _ = net.ParseMAC(mac)
	v.ip = net.ParseIP(ip).To4()
	v.ns.MustRun(t, "ip", "link", "set", "eth0", "down")
	v.ns.MustRun(t, "ip", "link", "set", "eth0", "address", mac)
	v.ns.MustRun(t, "ip", "link", "set", "eth0", "up")
	v.ns.MustRun(t, "ip", "addr", "add", ip+"/24", "dev", "eth0")
	// Without --no-wait, ovs-vsctl waits for the switch (ovsbpfd) to
	// apply the change, as it waits for ovs-vswitchd.
	ch.db.VSCtl(t, "add-port", "br-int", host, "--", "set", "Interface", host, "external_ids:iface-id="+lport)
	ch.vms[lport] = v
	return v
}

func (ch *chassis) ofport(t *testing.T, iface string) int {
	out := strings.TrimSpace(ch.db.VSCtl(t, "get", "Interface", iface, "ofport"))
	n, err := strconv.Atoi(out)
	require.NoError(t, err, "ofport %q", out)
	return n
}

var (
	lookupsRE  = regexp.MustCompile(`hit:(\d+) missed:(\d+)`)
	handledRE  = regexp.MustCompile(`handled\s*: (\d+) upcalls, (\d+) misses`)
	judgedRE   = regexp.MustCompile(`revalidator\s*: \d+ sweeps, \d+ expired, (\d+) changed away, (\d+) rewritten`)
	ukeysRE    = regexp.MustCompile(`ukeys\s*: (\d+)`)
	sweepsRE   = regexp.MustCompile(`revalidator\s*: (\d+) sweeps`)
	notReadyRE = regexp.MustCompile(`(\d+) sweeps before the pipeline was loaded`)
	statsRE    = regexp.MustCompile(`^(.*), packets:(\d+), bytes:\d+, used:[^,]*, (actions:.*)$`)
)

// counts returns the numbers re's groups match in out.
func counts(t *testing.T, re *regexp.Regexp, out string) []int {
	t.Helper()
	m := re.FindStringSubmatch(out)
	require.NotNil(t, m, "%s in:\n%s", re, out)
	var n []int
	for _, g := range m[1:] {
		v, err := strconv.Atoi(g)
		require.NoError(t, err)
		n = append(n, v)
	}
	return n
}

// misses is the datapath's count of cache misses.
func (ch *chassis) misses(t *testing.T) int { return ch.lookups(t)[1] }

// lookups returns the datapath's cache hits and misses.
func (ch *chassis) lookups(t *testing.T) []int {
	return counts(t, lookupsRE, ch.mustAppctl(t, "dpif/show"))
}

// judged is how many cached flows this ovsbpfd's revalidator deleted or
// rewrote because the pipeline changed.
func (ch *chassis) judged(t *testing.T) int {
	n := counts(t, judgedRE, ch.mustAppctl(t, "upcall/show"))
	return n[0] + n[1]
}

// flowPackets returns each megaflow (match and actions) with its packet
// count.
func (ch *chassis) flowPackets(t *testing.T) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(ch.mustAppctl(t, "dpctl/dump-flows")), "\n") {
		if line == "" {
			continue
		}
		m := statsRE.FindStringSubmatch(line)
		require.NotNil(t, m, line)
		n, _ := strconv.Atoi(m[2])
		out[m[1]+" "+m[3]] = n
	}
	return out
}

func ping(t *testing.T, from *vm, to net.IP, count int) string {
	t.Helper()
	out, err := from.ns.Run("ping", "-n", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "2", to.String())
	require.NoError(t, err, out)
	require.Contains(t, out, fmt.Sprintf("%d packets transmitted, %d received", count, count), out)
	return out
}

// tcpExchange sends n bytes from a to b over TCP and checks that b got
// them all.
func tcpExchange(t *testing.T, a, b *vm, n int) {
	t.Helper()
	var ln net.Listener
	require.NoError(t, b.ns.Do(func() (err error) {
		ln, err = net.Listen("tcp4", b.ip.String()+":0")
		return err
	}))
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		data, _ := io.ReadAll(c)
		got <- data
	}()
	payload := bytes.Repeat([]byte("ovsbpf"), n/6+1)[:n]
	require.NoError(t, a.ns.Do(func() error {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = c.Write(payload)
		return err
	}))
	select {
	case data := <-got:
		require.Equal(t, payload, data, "TCP stream arrives whole")
	case <-time.After(15 * time.Second):
		t.Fatal("TCP receiver timed out")
	}
}

// udpExchange sends count datagrams from a to b, paced, and returns how
// many arrived.
func udpExchange(t *testing.T, a, b *vm, count int) int {
	t.Helper()
	var pc net.PacketConn
	require.NoError(t, b.ns.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", b.ip.String()+":0")
		return err
	}))
	defer pc.Close()
	require.NoError(t, a.ns.Do(func() error {
		c, err := net.Dial("udp4", pc.LocalAddr().String())
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < count; i++ {
			if _, err := c.Write([]byte(fmt.Sprintf("datagram %d", i))); err != nil {
				return err
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}))
	got := 0
	buf := make([]byte, 2048)
	pc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for got < count {
		if _, _, err := pc.ReadFrom(buf); err != nil {
			break
		}
		got++
	}
	return got
}

func TestDatapathOneSwitch(t *testing.T) {
	c := ovntest.Start(t)
	c.NBCtl("ls-add", "sw0")
	for i := 1; i <= 3; i++ {
		c.NBCtl("lsp-add", "sw0", fmt.Sprintf("vm%d", i))
		c.NBCtl("lsp-set-addresses", fmt.Sprintf("vm%d", i), fmt.Sprintf("0a:00:00:00:00:0%d 10.0.0.%d", i, i))
	}
	c.Sync()

	ch := startChassis(t, c.SBRemote(), "none")
	ch.db.VSCtl(t, "add-br", "br-int")
	var vms []*vm
	for i := 1; i <= 3; i++ {
		vms = append(vms, ch.addVM(t, fmt.Sprintf("vm%d", i), fmt.Sprintf("tap%d", i),
			fmt.Sprintf("0a:00:00:00:00:0%d", i), fmt.Sprintf("10.0.0.%d", i)))
	}
	for i := 1; i <= 3; i++ {
		require.Equal(t, i, ch.ofport(t, fmt.Sprintf("tap%d", i)), "ovsbpfd reports the datapath port as ofport")
	}
	show := ch.mustAppctl(t, "dpif/show")
	require.Contains(t, show, "port 1: tap1")
	// As ovs-vswitchd would: the bridge's internal port is the local
	// port, and an interface bound to no logical port says why it is
	// not used.
	require.Equal(t, 65534, ch.ofport(t, "br-int"))
	ch.db.VSCtl(t, "add-port", "br-int", "stray")
	require.Equal(t, -1, ch.ofport(t, "stray"))
	require.Contains(t, ch.db.VSCtl(t, "get", "Interface", "stray", "error"), "not bound to a logical port")

	t.Run("arp and ping", func(t *testing.T) {
		// The first echo request misses twice (ARP, then ICMP) and
		// must still be answered: no loss on a miss.
		ping(t, vms[0], vms[1].ip, 1)
		before := ch.misses(t)
		ping(t, vms[0], vms[1].ip, 5)
		require.Equal(t, before, ch.misses(t), "later pings hit the cache: no upcall")
		neigh := vms[0].ns.MustRun(t, "ip", "neigh", "show", vms[1].ip.String())
		require.Contains(t, neigh, vms[1].mac.String(), "vm1 learned vm2's MAC through the datapath")
	})
	t.Run("tcp", func(t *testing.T) { tcpExchange(t, vms[0], vms[2], 256<<10) })
	t.Run("udp", func(t *testing.T) {
		require.Equal(t, 20, udpExchange(t, vms[1], vms[2], 20), "every datagram, the first included\n%s\n%s",
			ch.mustAppctl(t, "upcall/show"), ch.mustAppctl(t, "dpctl/dump-flows"))
	})

	flows := ch.mustAppctl(t, "dpctl/dump-flows")
	require.Contains(t, flows, "in_port(1)")
	require.Regexp(t, `recirc_id\(0\),in_port\(1\),.*eth\(.*dst=0a:00:00:00:00:02.*actions:2`, flows)
	out, err := exec.Command(ovsbpfctl, "dpctl/dump-flows", "-t", ch.control).CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, strings.Count(flows, "\n"), strings.Count(string(out), "\n"), "ovsbpfctl and ovs-appctl show the same flows")
	up := ch.mustAppctl(t, "upcall/show")
	require.Contains(t, up, "handler latency: p50")
	require.Regexp(t, `dropped       : 0 unsupported rewrites, 0 pipeline errors`, up)

	t.Run("removed port stops receiving", func(t *testing.T) {
		capture := netns.NewCapture(t, vms[2].ns, "eth0")
		require.Equal(t, 5, udpExchange(t, vms[0], vms[2], 5))
		judged := ch.judged(t)
		toVM3 := regexp.MustCompile(`(?m)^.*in_port\(1\),.*dst=` + vms[2].mac.String() + `.*actions:(.*)$`)
		c.NBCtl("--wait=sb", "lsp-del", "vm3")
		// ovsbpfd sees the Southbound change, and its revalidator drops
		// or deletes the cached flow to vm3: wait for that.
		require.Eventually(t, func() bool {
			if ch.judged(t) == judged {
				return false
			}
			m := toVM3.FindStringSubmatch(ch.mustAppctl(t, "dpctl/dump-flows"))
			return m == nil || m[1] == "drop"
		}, 10*time.Second, 20*time.Millisecond, "the revalidator acts on the removed port\n%s", ch.mustAppctl(t, "dpctl/dump-flows"))
		capture.From(vms[0].mac, 20*time.Millisecond) // drain what came before

		// Ten datagrams to vm3; wait until the datapath has looked each
		// up and the slow path has handled every miss, then nothing
		// may have arrived.
		lookups := ch.lookups(t)
		require.NoError(t, vms[0].ns.Do(func() error {
			c, err := net.Dial("udp4", net.JoinHostPort(vms[2].ip.String(), "9"))
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < 10; i++ {
				if _, err := c.Write([]byte("to a removed port")); err != nil {
					return err
				}
			}
			return nil
		}))
		require.Eventually(t, func() bool {
			now := ch.lookups(t)
			handled := counts(t, handledRE, ch.mustAppctl(t, "upcall/show"))
			return now[0]+now[1]-lookups[0]-lookups[1] >= 10 && handled[1] == now[1]
		}, 10*time.Second, 20*time.Millisecond, "the datapath processes the datagrams")
		require.Empty(t, capture.From(vms[0].mac, 20*time.Millisecond), "nothing reaches a port removed from the switch")
		// The others still talk.
		ping(t, vms[0], vms[1].ip, 2)
	})

	t.Run("del-flows forgets every flow", func(t *testing.T) {
		require.NotEmpty(t, ch.flowPackets(t))
		require.Positive(t, counts(t, ukeysRE, ch.mustAppctl(t, "upcall/show"))[0])
		ch.mustAppctl(t, "dpctl/del-flows")
		require.Empty(t, ch.flowPackets(t))
		require.Zero(t, counts(t, ukeysRE, ch.mustAppctl(t, "upcall/show"))[0], "the slow path forgot them too")
		missed := ch.misses(t)
		ping(t, vms[0], vms[1].ip, 1)
		require.Greater(t, ch.misses(t), missed, "the next packets miss")
	})
}

// bpffs mounts a bpf filesystem of the test's own on a temporary
// directory: ovsbpfd pins its datapath there, and runs under ip netns exec
// see it (they remount /sys, so /sys/fs/bpf would not be shared).
func bpffs(t *testing.T) string {
	dir := t.TempDir()
	out, err := exec.Command("mount", "-t", "bpf", "bpf", dir).CombinedOutput()
	require.NoError(t, err, string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting the test's bpffs: %v: %s", err, out)
		}
	})
	return dir
}

// A restarted ovsbpfd keeps the megaflows its predecessor pinned: traffic
// that runs across the restart keeps hitting them, the new daemon checks
// them against the logical flows once it has read the Southbound, and
// installs none again.
func TestRestartKeepsTheCache(t *testing.T) {
	c := ovntest.Start(t)
	c.NBCtl("ls-add", "sw0")
	for i := 1; i <= 2; i++ {
		c.NBCtl("lsp-add", "sw0", fmt.Sprintf("vm%d", i))
		c.NBCtl("lsp-set-addresses", fmt.Sprintf("vm%d", i), fmt.Sprintf("0a:00:00:00:00:0%d 10.0.0.%d", i, i))
	}
	c.Sync()
	ch := startChassis(t, c.SBRemote(), filepath.Join(bpffs(t), "ovsbpf"))
	ch.db.VSCtl(t, "add-br", "br-int")
	var vms []*vm
	for i := 1; i <= 2; i++ {
		vms = append(vms, ch.addVM(t, fmt.Sprintf("vm%d", i), fmt.Sprintf("tap%d", i),
			fmt.Sprintf("0a:00:00:00:00:0%d", i), fmt.Sprintf("10.0.0.%d", i)))
	}
	// Static neighbours: the only traffic is the test's pings, so every
	// packet after the first exchange must hit the two cached flows.
	for i, v := range vms {
		peer := vms[1-i]
		v.ns.MustRun(t, "ip", "neigh", "replace", peer.ip.String(), "lladdr", peer.mac.String(), "dev", "eth0", "nud", "permanent")
	}
	ping(t, vms[0], vms[1].ip, 2)
	before := ch.flowPackets(t)
	require.Len(t, before, 2, "echo request and reply: %v", before)
	missed := ch.misses(t)

	const pings = 100
	pinged := make(chan string, 1)
	go func() {
		out, err := vms[0].ns.Run("ping", "-n", "-c", strconv.Itoa(pings), "-i", "0.05", "-W", "2", vms[1].ip.String())
		if err != nil {
			out += err.Error()
		}
		pinged <- out
	}()
	ch.stop(t, ch.daemon)
	// The new daemon does not reach the Southbound at first, as after a
	// reboot with the central down: its revalidator sweeps the recovered
	// flows with no logical pipeline to check them against.
	ch.db.VSCtl(t, "--no-wait", "set", "Open_vSwitch", ".", "external_ids:ovn-remote=unix:"+filepath.Join(t.TempDir(), "no-southbound.sock"))
	ch.start(t)
	require.Eventually(t, func() bool {
		// A sweep counts when it starts: the second has begun once the
		// first is done.
		return counts(t, sweepsRE, ch.mustAppctl(t, "upcall/show"))[0] >= 2
	}, 10*time.Second, 20*time.Millisecond, "a revalidator sweep")
	require.Len(t, ch.flowPackets(t), len(before), "flows kept while the pipeline is not loaded")
	require.Positive(t, counts(t, notReadyRE, ch.mustAppctl(t, "upcall/show"))[0], "the sweep found no pipeline to judge by")
	ch.db.VSCtl(t, "--no-wait", "set", "Open_vSwitch", ".", "external_ids:ovn-remote="+c.SBRemote())
	// The new daemon judges the flows once it has the logical flows:
	// each kept flow gets a ukey.
	require.Eventually(t, func() bool {
		return counts(t, ukeysRE, ch.mustAppctl(t, "upcall/show"))[0] == len(before)
	}, 20*time.Second, 20*time.Millisecond, "the new daemon checks the recovered flows\n%s", ch.mustAppctl(t, "upcall/show"))
	var out string
	select {
	case out = <-pinged:
	case <-time.After(30 * time.Second):
		t.Fatal("ping did not finish")
	}
	require.Contains(t, out, fmt.Sprintf("%d packets transmitted, %d received", pings, pings), "forwarding went on across the restart")

	after := ch.flowPackets(t)
	for f, n := range before {
		require.Contains(t, after, f, "flow kept")
		require.Equal(t, n+pings, after[f], "every ping hit the flow, whose count carried over: %s", f)
	}
	require.Len(t, after, len(before))
	require.Equal(t, missed, ch.misses(t), "no packet missed the cache across the restart")
	up := ch.mustAppctl(t, "upcall/show")
	require.Equal(t, []int{0, 0}, counts(t, handledRE, up), "the new daemon handled no upcall\n%s", up)
	require.Regexp(t, `installed\s*: 0 megaflows`, up)
	require.Zero(t, ch.judged(t), "the new daemon deleted or rewrote no flow")
}
