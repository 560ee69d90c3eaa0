package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ovsbpf/ovsbpf/bpf"
	"github.com/ovsbpf/ovsbpf/internal/netns"
)

// floodPorts is how many ports the flood tests send to: OVN's largest
// multicast group on one chassis, as the megaflow must hold it.
const floodPorts = 256

// dhcpDiscover is a broadcast as a VM that boots sends it.
func dhcpDiscover(t testing.TB) []byte {
	return serialize(t, &layers.Ethernet{SrcMAC: macVM1, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeIPv4},
		&layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolUDP, SrcIP: net.IPv4zero.To4(), DstIP: net.IPv4bcast.To4()},
		&layers.UDP{SrcPort: 68, DstPort: 67}, gopacket.Payload(fill(240)))
}

// floodRig is a chassis namespace with floodPorts veth pairs fN-gN (the
// fN are datapath ports 2..N+1, as a VIF's host side is; the gN play the
// VMs and stay in the namespace), and a packet socket that sees every frame
// any fN sends.
type floodRig struct {
	chassis *netns.NS
	ifindex map[uint32]uint16 // ifindex -> datapath port
	ports   []Port
	sock    int
}

func newFloodRig(t *testing.T) *floodRig {
	chassis := netns.New(t, "ovsbpf-flood")
	// No IPv6: the interfaces send nothing of their own.
	chassis.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	var batch strings.Builder
	for i := 1; i <= floodPorts; i++ {
		fmt.Fprintf(&batch, "link add f%d type veth peer name g%d\nlink set f%d up\nlink set g%d up\n", i, i, i, i)
	}
	file := filepath.Join(t.TempDir(), "links")
	require.NoError(t, os.WriteFile(file, []byte(batch.String()), 0o600))
	chassis.MustRun(t, "ip", "-batch", file)
	r := &floodRig{chassis: chassis, ifindex: map[uint32]uint16{}, sock: -1}
	require.NoError(t, chassis.Do(func() error {
		for i := 1; i <= floodPorts; i++ {
			ifi, err := net.InterfaceByName(fmt.Sprintf("f%d", i))
			if err != nil {
				return err
			}
			no := uint16(i + 1)
			r.ifindex[uint32(ifi.Index)] = no
			r.ports = append(r.ports, Port{No: no, Ifindex: uint32(ifi.Index), Name: ifi.Name})
		}
		// One socket on every interface of the namespace (ifindex 0):
		// it sees each frame an fN transmits, with its index.
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		r.sock = fd
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20); err != nil {
			return fmt.Errorf("socket buffer: %w", err)
		}
		tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL)})
	}))
	t.Cleanup(func() { unix.Close(r.sock) })
	return r
}

func htons(v uint16) uint16 { return v>>8 | v<<8 }

// sent returns the frames the ports transmitted within d, by datapath
// port.
func (r *floodRig) sent(t *testing.T, d time.Duration) map[uint16][][]byte {
	out := map[uint16][][]byte{}
	buf := make([]byte, 65536)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n, from, err := unix.Recvfrom(r.sock, buf, 0)
		if err != nil {
			continue
		}
		ll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || ll.Pkttype != unix.PACKET_OUTGOING {
			continue
		}
		no, ok := r.ifindex[uint32(ll.Ifindex)]
		if !ok {
			continue // a gN: what the VMs receive is the fN's twin
		}
		out[no] = append(out[no], bytes.Clone(buf[:n]))
	}
	return out
}

// floodActions outputs to every port of the rig; before every fourth
// output it rewrites the Ethernet source to a MAC naming that port, as a
// per-port rewrite would. It returns the frame each port must get.
func floodActions(r *floodRig, frame []byte) ([]Action, map[uint16][]byte) {
	var acts []Action
	want := map[uint16][]byte{}
	cur := bytes.Clone(frame)
	for _, p := range r.ports {
		if p.No%4 == 0 {
			mac := [6]byte{0x0a, 0xfe, 0, 0, byte(p.No >> 8), byte(p.No)}
			acts = append(acts, SetEthSrc(mac))
			cur = bytes.Clone(cur)
			copy(cur[6:12], mac[:])
		}
		acts = append(acts, Output(p.No))
		want[p.No] = cur
	}
	return acts, want
}

func TestFloodTo256PortsIsCachedAndEachPortGetsItsBytes(t *testing.T) {
	r := newFloodRig(t)
	frame := dhcpDiscover(t)
	acts, want := floodActions(r, frame)
	require.Greater(t, len(acts), BlockActions*8, "a list that chains many blocks")
	last := r.ports[len(r.ports)-1].No

	var res RunResult
	var blocksUsed int
	require.NoError(t, r.chassis.Do(func() error {
		d, err := Open(Config{})
		if err != nil {
			return err
		}
		defer d.Close()
		if err := d.SetPort(Port{No: 1, Ifindex: 1, Name: "lo"}); err != nil {
			return err
		}
		for _, p := range r.ports {
			if err := d.SetPort(p); err != nil {
				return err
			}
		}
		var k Key
		k.InPort = 1
		k.EthDst = [6]byte(layers.EthernetBroadcast)
		if _, err := d.PutFlow(maskOf(l2Switch...), k, acts); err != nil {
			return err
		}
		flows, err := d.Flows()
		if err != nil {
			return err
		}
		if len(flows) != 1 || len(flows[0].Actions) != len(acts) {
			return fmt.Errorf("dump shows %d flows, want one with %d actions", len(flows), len(acts))
		}
		_, blocksUsed = d.ActionBlocks()
		// A cache hit: the fast path itself, under BPF_PROG_TEST_RUN.
		// Every output but the last is a clone sent for real; the last
		// is the redirect the test run reports.
		res, err = d.Run(frame, 1)
		if err != nil {
			return err
		}
		c, err := d.Counters()
		if err != nil {
			return err
		}
		if c.EMCHits+c.MaskHits != 1 || c.ActionErrors != 0 {
			return fmt.Errorf("want one cache hit and no action error: %+v", c)
		}
		return nil
	}))
	require.Equal(t, blocksFor(len(acts))-1, blocksUsed, "the list's blocks beyond its first are taken from the pool")
	require.Equal(t, uint32(VerdictRedirect), res.Verdict)
	require.Equal(t, want[last], res.Frame[:len(want[last])], "the last output takes the packet as rewritten for it")
	got := r.sent(t, 500*time.Millisecond)
	require.Len(t, got, floodPorts-1, "a clone to every port but the last")
	for _, p := range r.ports[:len(r.ports)-1] {
		require.Len(t, got[p.No], 1, "port %d: exactly one copy", p.No)
		require.Equal(t, want[p.No], got[p.No][0], "port %d: the frame as the actions before its output left it", p.No)
	}
}

func TestExecuteDeliversA256PortFlood(t *testing.T) {
	r := newFloodRig(t)
	frame := dhcpDiscover(t)
	acts, want := floodActions(r, frame)
	require.NoError(t, r.chassis.Do(func() error {
		d, err := Open(Config{})
		if err != nil {
			return err
		}
		defer d.Close()
		if err := d.SetPort(Port{No: 1, Ifindex: 1, Name: "lo"}); err != nil {
			return err
		}
		for _, p := range r.ports {
			if err := d.SetPort(p); err != nil {
				return err
			}
		}
		x, err := d.NewExecutor()
		if err != nil {
			return err
		}
		defer x.Close()
		if err := x.Execute(frame, 1, ExecMeta{}, acts); err != nil {
			return err
		}
		if err := x.Execute(frame, 1, ExecMeta{}, make([]Action, MaxActions+1)); !errors.Is(err, ErrTooManyActions) {
			return fmt.Errorf("a list past %d actions: got %v, want ErrTooManyActions", MaxActions, err)
		}
		return nil
	}))
	got := r.sent(t, 500*time.Millisecond)
	require.Len(t, got, floodPorts, "a copy to every port")
	for _, p := range r.ports {
		require.Len(t, got[p.No], 1, "port %d: exactly one copy", p.No)
		require.Equal(t, want[p.No], got[p.No][0], "port %d", p.No)
	}
}

func TestFlowTableIsSizedAtLoad(t *testing.T) {
	_, err := Open(Config{MaxFlows: -5})
	require.ErrorContains(t, err, "-5 megaflows")

	small := openTest(t, Config{MaxFlows: 100})
	require.Equal(t, 100, small.MaxFlows())
	m := maskOf(mInPort)
	for i := 1; i <= 100; i++ {
		_, err := small.PutFlow(m, Key{InPort: uint16(i)}, []Action{Output(2)})
		require.NoError(t, err, "flow %d of 100", i)
	}
	_, err = small.PutFlow(m, Key{InPort: 101}, []Action{Output(2)})
	require.ErrorIs(t, err, ErrFlowLimit)

	big := openTest(t, Config{})
	require.Equal(t, DefaultMaxFlows, big.MaxFlows())
	memSmall, err := small.MapMemory()
	require.NoError(t, err)
	memBig, err := big.MapMemory()
	require.NoError(t, err)
	for _, name := range []string{"flows", "flow_actions", "flow_stats", "flow_used", "action_blocks"} {
		require.Greater(t, memBig[name], memSmall[name], "%s grows with the flow table", name)
	}
	// 200,000 action lists of 136 bytes: the array alone is 26 MiB.
	require.Greater(t, memBig["flow_actions"], uint64(DefaultMaxFlows*136))
	require.Contains(t, memBig.String(), "flow_actions")
	t.Logf("maps of a %d-flow datapath: %s", DefaultMaxFlows, memBig)
}

func TestActionBlockPoolIsBoundedAndGivenBack(t *testing.T) {
	d := openTest(t, Config{MaxFlows: 100}) // a pool of 64 blocks
	total, used := d.ActionBlocks()
	require.Equal(t, MaxActionBlocks, total)
	require.Zero(t, used)
	long := make([]Action, MaxActions) // the longest list: 63 blocks past its first
	for i := range long {
		long[i] = Output(2)
	}
	m := maskOf(mInPort)
	_, err := d.PutFlow(m, Key{InPort: 1}, long)
	require.NoError(t, err)
	_, used = d.ActionBlocks()
	require.Equal(t, MaxActionBlocks-1, used)
	_, err = d.PutFlow(m, Key{InPort: 2}, long)
	require.ErrorIs(t, err, ErrActionPool, "a second such list does not fit")
	require.Equal(t, 1, d.FlowCount(), "the refused flow took nothing")
	_, err = d.PutFlow(m, Key{InPort: 2}, long[:BlockActions+1])
	require.NoError(t, err, "the block left is enough for a list of two blocks")

	require.NoError(t, d.DeleteFlow(m, Key{InPort: 1}))
	_, used = d.ActionBlocks()
	require.Equal(t, 1, used, "a deleted flow's blocks go back (after the quarantine)")
}

// A restarted daemon takes pinned floods over with their blocks: it reads
// each list back whole, counts its blocks as taken, and gives new lists
// other blocks. A pinned table of another size is refused, not reused.
func TestPinnedFloodsKeepTheirBlocks(t *testing.T) {
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("ovsbpf-test-flood-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	flood := func(n int, first uint16) []Action {
		var as []Action
		for i := 0; i < n; i++ {
			as = append(as, Output(first+uint16(i)))
		}
		return as
	}
	m := maskOf(mInPort)
	d, err := Open(Config{PinPath: dir, MaxFlows: 1000})
	require.NoError(t, err)
	_, err = d.PutFlow(m, Key{InPort: 1}, flood(20, 100))
	require.NoError(t, err)
	require.NoError(t, d.Close())

	_, err = Open(Config{PinPath: dir, MaxFlows: 2000})
	require.ErrorIs(t, err, ebpf.ErrMapIncompatible, "pinned maps of another size")
	require.ErrorContains(t, err, "2000 megaflows asked")

	d2, err := Open(Config{PinPath: dir, MaxFlows: 1000})
	require.NoError(t, err)
	t.Cleanup(func() { d2.Destroy() })
	_, used := d2.ActionBlocks()
	require.Equal(t, 2, used, "the recovered list's two blocks past its first")
	_, err = d2.PutFlow(m, Key{InPort: 2}, flood(30, 200))
	require.NoError(t, err)
	// Both lists, as the kernel holds them.
	for in, want := range map[uint16][]Action{1: flood(20, 100), 2: flood(30, 200)} {
		f := d2.flows.find(m, Key{InPort: in})
		require.NotNil(t, f)
		var first bpf.DatapathOvsbpfActions
		require.NoError(t, d2.objs.FlowActions.Lookup(f.id, &first))
		got, _, err := readActions(d2.objs.ActionBlocks, &first, d2.pool)
		require.NoError(t, err)
		require.Equal(t, want, got, "in_port %d", in)
	}
}
