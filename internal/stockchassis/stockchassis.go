// Package stockchassis starts a stock OVN chassis for tests: ovn-controller
// and ovs-vswitchd with its userspace (netdev) datapath, from Debian's
// ovn-host and openvswitch-switch packages, on a Southbound the test runs
// (ovntest.Env). It is the reference ovsbpfd is compared with.
//
// Lifetime: the chassis is a network namespace of its own (internal/netns)
// with its own local Open_vSwitch database (an ovntest.Server). Both
// daemons run inside that namespace as children of the test binary, never
// detached, with every socket, pid and log file in a fresh directory; the
// kernel kills them if the test binary dies (Pdeathsig). t.Cleanup stops
// them (SIGTERM, then SIGKILL) before the namespace and the directory are
// removed, pass or fail. VMs are namespaces whose eth0 is the peer of a
// veth in the chassis namespace, added to br-int as a system port.
package stockchassis

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsbpf/ovsbpf/internal/netns"
	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// Bounds that turn a hang into a readable failure.
const (
	readyTimeout   = 30 * time.Second // a daemon answering, ovn-controller connecting
	commandTimeout = 20 * time.Second // one ovs-appctl/ovs-ofctl run
	stopGrace      = 5 * time.Second  // SIGTERM to SIGKILL
)

// Chassis is one running stock chassis.
type Chassis struct {
	NS       *netns.NS       // the chassis' network namespace
	DB       *ovntest.Server // its local Open_vSwitch database
	SystemID string          // external_ids:system-id, the Chassis name in the Southbound

	dir        string // run directory: sockets, pid files, logs
	vswitchd   *daemon
	controller *daemon
}

// daemon is one child process.
type daemon struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts a stock chassis named systemID on the Southbound sbRemote
// (a unix: remote, which every namespace reaches) and returns once
// ovn-controller is connected to it. A missing program fails t.
func Start(t testing.TB, sbRemote, systemID string) *Chassis {
	t.Helper()
	ovntest.RequireBinaries(t, "ovs-vsctl", "ovs-appctl", "ovs-ofctl")
	for _, name := range []string{"ovs-vswitchd", "ovn-controller", "ovn-appctl"} {
		if _, err := lookBinary(name); err != nil {
			t.Fatalf("stockchassis: %s not found (%v): apt-get install openvswitch-switch ovn-host (scripts/setup.sh does)", name, err)
		}
	}
	// Unix socket paths must fit in 108 bytes: a short directory of our
	// own rather than t.TempDir, whose path grows with the test's name.
	dir, err := os.MkdirTemp("/tmp", "stockchassis")
	if err != nil {
		t.Fatalf("stockchassis: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	ch := &Chassis{NS: netns.New(t, "ovn-stock"), DB: ovntest.StartServer(t, "conf", ovntest.VSwitchSchema), SystemID: systemID, dir: dir}
	t.Cleanup(func() {
		if t.Failed() {
			for _, d := range []*daemon{ch.vswitchd, ch.controller} {
				if d != nil {
					t.Logf("stockchassis %s: %s log (%s):\n%s", systemID, d.name, d.log, tail(d.log, 30))
				}
			}
		}
	})

	ch.DB.VSCtl(t, "--no-wait", "init")
	ch.vswitchd = ch.launch(t, "ovs-vswitchd", ch.DB.Remote(), "--unixctl="+ch.vswitchdCtl())
	ch.waitFor(t, ch.vswitchd, func() error {
		_, err := ch.Appctl("list-commands")
		return err
	})
	// Waits for ovs-vswitchd to create br-int and its datapath.
	ch.DB.VSCtl(t, "add-br", "br-int", "--", "set", "Bridge", "br-int", "datapath_type=netdev", "fail-mode=secure",
		"other_config:disable-in-band=true")
	ch.DB.VSCtl(t, "set", "Open_vSwitch", ".", "external_ids:system-id="+systemID, "external_ids:ovn-remote="+sbRemote,
		"external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip=127.0.0.1",
		"external_ids:ovn-bridge-datapath-type=netdev")
	ch.controller = ch.launch(t, "ovn-controller", ch.DB.Remote())
	ch.waitFor(t, ch.controller, func() error {
		out, err := ch.ControllerAppctl("connection-status")
		if err == nil && strings.TrimSpace(out) != "connected" {
			err = fmt.Errorf("connection-status %q", strings.TrimSpace(out))
		}
		return err
	})
	return ch
}

func (ch *Chassis) vswitchdCtl() string { return filepath.Join(ch.dir, "ovs-vswitchd.ctl") }

// controllerCtl is ovn-controller's unixctl socket: 23.03 has no
// --unixctl, and names it after its pid in OVN_RUNDIR.
func (ch *Chassis) controllerCtl() string {
	return filepath.Join(ch.dir, fmt.Sprintf("ovn-controller.%d.ctl", ch.controller.cmd.Process.Pid))
}

// env is the daemons' and control programs' environment: every OVS/OVN
// run, log and database directory in the chassis' directory, so that
// ovn-controller finds br-int.mgmt there.
func (ch *Chassis) env() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OVS_") || strings.HasPrefix(k, "OVN_") {
			continue
		}
		env = append(env, kv)
	}
	for _, k := range []string{"OVS_RUNDIR", "OVS_LOGDIR", "OVS_DBDIR", "OVN_RUNDIR", "OVN_LOGDIR", "OVN_DBDIR"} {
		env = append(env, k+"="+ch.dir)
	}
	return env
}

// launch runs program inside the chassis namespace (ip netns exec execs
// it, so the child's pid is the daemon's) and stops it when t ends.
func (ch *Chassis) launch(t testing.TB, program string, args ...string) *daemon {
	t.Helper()
	path, err := lookBinary(program)
	if err != nil {
		t.Fatalf("stockchassis: %s: %v", program, err)
	}
	d := &daemon{name: program, log: filepath.Join(ch.dir, program+".log"), done: make(chan struct{})}
	args = append([]string{"netns", "exec", ch.NS.Name, path}, args...)
	args = append(args, "--log-file="+d.log, "--no-chdir", "-vconsole:off", "-vfile:info")
	d.cmd = exec.Command("ip", args...)
	d.cmd.Env = ch.env()
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := d.cmd.Start(); err != nil {
		t.Fatalf("stockchassis: starting %s: %v", program, err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(stopGrace):
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	return d
}

// waitFor polls ready until it succeeds, failing t if d exits or the
// ready timeout passes.
func (ch *Chassis) waitFor(t testing.TB, d *daemon, ready func() error) {
	t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		select {
		case <-d.done:
			t.Fatalf("stockchassis: %s exited while starting (%v): %v\n%s", d.name, d.cmd.ProcessState, err, tail(d.log, 20))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("stockchassis: %s not ready within %v: %v\n%s", d.name, readyTimeout, err, tail(d.log, 20))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run runs a control program with the chassis' environment.
func (ch *Chassis) run(program string, args ...string) (string, error) {
	path, err := lookBinary(program)
	if err != nil {
		return "", fmt.Errorf("%s: %w", program, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = ch.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", program, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Appctl runs an ovs-appctl command on ovs-vswitchd.
func (ch *Chassis) Appctl(args ...string) (string, error) {
	return ch.run("ovs-appctl", append([]string{"-t", ch.vswitchdCtl()}, args...)...)
}

// ControllerAppctl runs an ovn-appctl command on ovn-controller.
func (ch *Chassis) ControllerAppctl(args ...string) (string, error) {
	return ch.run("ovn-appctl", append([]string{"-t", ch.controllerCtl()}, args...)...)
}

// DumpConntrack returns ovs-vswitchd's userspace conntrack table as
// `ovs-appctl dpctl/dump-conntrack` prints it.
func (ch *Chassis) DumpConntrack(t testing.TB) string {
	t.Helper()
	out, err := ch.Appctl("dpctl/dump-conntrack")
	if err != nil {
		t.Fatalf("stockchassis: %v", err)
	}
	return out
}

// CTZones returns the conntrack zone ovn-controller assigned to each
// name (a logical port, or <router uuid>_dnat / _snat), as it keeps them
// in br-int's external_ids:ct-zone-NAME.
func (ch *Chassis) CTZones(t testing.TB) map[string]int {
	t.Helper()
	out := ch.DB.VSCtl(t, "--format=csv", "--data=bare", "--no-headings", "--columns=external_ids", "list", "Bridge", "br-int")
	zones := map[string]int{}
	// external_ids as bare csv: "k1=v1 k2=v2 ..." (quoted as a whole).
	for _, kv := range strings.Fields(strings.Trim(strings.TrimSpace(out), `"`)) {
		k, v, ok := strings.Cut(kv, "=")
		name, isZone := strings.CutPrefix(k, "ct-zone-")
		if !ok || !isZone {
			continue
		}
		z, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("stockchassis: br-int external_ids %s: zone %q is not a number", k, v)
		}
		zones[name] = z
	}
	return zones
}

// AddVM creates a VM namespace whose eth0 has mac and cidr (ADDR/LEN),
// a default route through gw (none if gw is empty), its host side named
// host in the chassis, and binds it to the logical port lport on br-int,
// as a CMS would. It returns once ovs-vswitchd has added the port.
func (ch *Chassis) AddVM(t testing.TB, lport, host, mac, cidr, gw string) *netns.NS {
	t.Helper()
	if _, err := net.ParseMAC(mac); err != nil {
		t.Fatalf("stockchassis: VM %s: %v", lport, err)
	}
	if _, _, err := net.ParseCIDR(cidr); err != nil {
		t.Fatalf("stockchassis: VM %s: %v", lport, err)
	}
	vm := netns.AddVM(t, ch.NS, host)
	vm.MustRun(t, "ip", "link", "set", "eth0", "down")
	vm.MustRun(t, "ip", "link", "set", "eth0", "address", mac)
	vm.MustRun(t, "ip", "link", "set", "eth0", "up")
	vm.MustRun(t, "ip", "addr", "add", cidr, "dev", "eth0")
	if gw != "" {
		vm.MustRun(t, "ip", "route", "add", "default", "via", gw)
	}
	// ovs-vswitchd's userspace datapath reads and writes the veth with a
	// packet socket and never fills in a checksum the VM left to the
	// device: the VM computes them itself.
	vm.MustRun(t, "ethtool", "-K", "eth0", "tx", "off")
	ch.DB.VSCtl(t, "add-port", "br-int", host, "--", "set", "Interface", host, "external_ids:iface-id="+lport)
	return vm
}

func lookBinary(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("not on PATH nor in /usr/sbin, /usr/bin")
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
