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
	vms     map[string]*vm
}

type vm struct {
	ns   *netns.NS
	mac  net.HardwareAddr
	ip   net.IP
	host string // the chassis-side interface
}

// startChassis starts ovsbpfd in a new chassis namespace, reading the
// local database db and the Southbound sb.
func startChassis(t *testing.T, sbRemote string) *chassis {
	ovntest.RequireBinaries(t, "ovs-vsctl", "ovs-appctl")
	dir := t.TempDir()
	ch := &chassis{ns: netns.New(t, "ovsbpf-chassis"), db: ovntest.StartServer(t, "conf", ovntest.VSwitchSchema),
		control: filepath.Join(dir, "ovsbpfd.ctl"), log: filepath.Join(dir, "ovsbpfd.log"), vms: map[string]*vm{}}
	ch.db.VSCtl(t, "--no-wait", "init")
	ch.db.VSCtl(t, "--no-wait", "set", "Open_vSwitch", ".", "external_ids:system-id=chassis-1", "external_ids:ovn-remote="+sbRemote)

	logf, err := os.Create(ch.log)
	require.NoError(t, err)
	cmd := exec.Command("ip", "netns", "exec", ch.ns.Name, ovsbpfd, "--db="+ch.db.Remote(), "--unixctl="+ch.control,
		"--pin-path=none", "--log-level=debug", "--handlers=2")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	require.NoError(t, cmd.Start())
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("ovsbpfd did not stop on SIGTERM within 5 s")
		}
		logf.Close()
		// Under -race the detector writes its reports to the daemon's
		// stderr, which is the log, and lets the daemon run on.
		if b, _ := os.ReadFile(ch.log); bytes.Contains(b, []byte("WARNING: DATA RACE")) {
			_, report, _ := bytes.Cut(b, []byte("==================\nWARNING: DATA RACE"))
			t.Errorf("ovsbpfd reported a data race:\n%.6000s", report)
		}
		if t.Failed() {
			t.Logf("ovsbpfd log:\n%s", tail(ch.log, 80))
		}
	})
	require.Eventually(t, func() bool {
		_, err := ch.appctl("list-commands")
		return err == nil
	}, 10*time.Second, 20*time.Millisecond, "ovsbpfd's control socket; log:\n%s", tail(ch.log, 40))
	return ch
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

var missedRE = regexp.MustCompile(`missed:(\d+)`)

func (ch *chassis) misses(t *testing.T) int {
	m := missedRE.FindStringSubmatch(ch.mustAppctl(t, "dpif/show"))
	require.NotNil(t, m)
	n, _ := strconv.Atoi(m[1])
	return n
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

	ch := startChassis(t, c.SBRemote())
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
		c.NBCtl("--wait=sb", "lsp-del", "vm3")
		// ovsbpfd sees the Southbound change and revalidates; allow it
		// the time a monitor update takes to arrive.
		time.Sleep(200 * time.Millisecond)
		capture.From(vms[0].mac, 10*time.Millisecond) // drain
		require.Zero(t, udpExchange(t, vms[0], vms[2], 10), "nothing reaches a port removed from the switch")
		require.Empty(t, capture.From(vms[0].mac, 100*time.Millisecond))
		// The others still talk.
		ping(t, vms[0], vms[1].ip, 2)
	})
}
