package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/netns"
)

// executeToTwoVMs executes actions on frame, as from port 1, in a chassis
// namespace whose ports 2 and 3 are the veths of two VMs, and returns the
// captures on the VMs' ends.
func executeToTwoVMs(t *testing.T, frame []byte, actions []Action) (vm2, vm3 *netns.Capture) {
	t.Helper()
	chassis := netns.New(t, "ovsbpf-chassis")
	ns2 := netns.AddVM(t, chassis, "h2")
	ns3 := netns.AddVM(t, chassis, "h3")
	vm2, vm3 = netns.NewCapture(t, ns2, "eth0"), netns.NewCapture(t, ns3, "eth0")
	require.NoError(t, chassis.Do(func() error {
		d, err := Open(Config{})
		if err != nil {
			return err
		}
		defer d.Close()
		if err := namedPorts(d, false, "lo", "h2", "h3"); err != nil {
			return err
		}
		x, err := d.NewExecutor()
		if err != nil {
			return err
		}
		defer x.Close()
		return x.Execute(frame, 1, ExecMeta{}, actions)
	}))
	return vm2, vm3
}

func TestExecuteDeliversLikeTheFastPath(t *testing.T) {
	marker := [6]byte{0x0a, 0xbb, 0, 0, 0, 0x42}
	frame := udpFrame(t, 30)
	// Two outputs: a clone to each VM, the rewrite applying to both.
	cap2, cap3 := executeToTwoVMs(t, frame, []Action{SetEthSrc(marker), DecTTL(), Output(2), Output(3)})
	for _, c := range []*netns.Capture{cap2, cap3} {
		got := c.From(marker[:], 300*time.Millisecond)
		require.Len(t, got, 1, "exactly one copy per output")
		require.Equal(t, byte(63), got[0][22], "decremented TTL")
		requireValidChecksums(t, got[0])
	}
}

// namedPorts makes the interfaces names, in the calling thread's
// namespace, datapath ports 1, 2, ...: attached (AddPort, port 2 a peer)
// with attach, else known to the datapath only (SetPort), for Execute and
// BPF_PROG_TEST_RUN to send to.
func namedPorts(d *Datapath, attach bool, names ...string) error {
	for i, name := range names {
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		p := Port{No: uint16(i + 1), Ifindex: uint32(ifi.Index), Name: name}
		if !attach {
			err = d.SetPort(p)
		} else {
			p.Peer = p.No == 2
			err = d.AddPort(p)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func TestAttachedPortForwardsRealTraffic(t *testing.T) {
	chassis := netns.New(t, "ovsbpf-chassis")
	vm1 := netns.AddVM(t, chassis, "h1")
	vm2 := netns.AddVM(t, chassis, "h2")
	cap2 := netns.NewCapture(t, vm2, "eth0")
	mac1, err := vm1.MAC("eth0")
	require.NoError(t, err)

	require.NoError(t, chassis.Do(func() error {
		d, err := Open(Config{})
		if err != nil {
			return err
		}
		defer d.Close()
		// Port 2 sends into vm2's namespace directly (a peer).
		if err := namedPorts(d, true, "h1", "h2"); err != nil {
			return err
		}
		// Everything vm1 sends goes to vm2, into its namespace directly.
		if _, err := d.PutFlow(Mask{InPort: 0xffff}, Key{InPort: 1}, []Action{Output(2)}); err != nil {
			return err
		}
		// vm1 sends five frames with its own source MAC.
		f := serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: macVM2, EthernetType: layers.EthernetTypeIPv4},
			ipv4Layer(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 2})
		if err := vm1.Send("eth0", f, 5); err != nil {
			return err
		}
		got := cap2.From(mac1, 300*time.Millisecond)
		if len(got) != 5 {
			return fmt.Errorf("vm2 received %d of 5 frames", len(got))
		}
		flows, err := d.Flows()
		if err != nil {
			return err
		}
		if flows[0].Stats.Packets != 5 {
			return fmt.Errorf("flow counted %d packets, want 5", flows[0].Stats.Packets)
		}
		// Deleting the port stops delivery at once.
		if err := d.DeletePort(2); err != nil {
			return err
		}
		if err := vm1.Send("eth0", f, 3); err != nil {
			return err
		}
		if got := cap2.From(mac1, 200*time.Millisecond); len(got) != 0 {
			return fmt.Errorf("vm2 received %d frames after its port was deleted", len(got))
		}
		return nil
	}))
}

func TestPinnedDatapathOutlivesTheProcessHandles(t *testing.T) {
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("ovsbpf-test-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(dir) })

	layout, err := LayoutVersion()
	require.NoError(t, err)
	require.NotContains(t, layout, ".", "bpffs refuses dots in names")
	d, err := Open(Config{PinPath: dir})
	require.NoError(t, err)
	require.NoError(t, d.SetPort(Port{No: 1, Ifindex: ifVM1, Name: "vm1"}))
	require.NoError(t, d.SetPort(Port{No: 2, Ifindex: ifVM2, Name: "vm2"}))
	_, err = d.PutFlow(maskOf(l2Switch...), keyFor(1), []Action{Output(2)})
	require.NoError(t, err)
	_, err = d.PutFlow(maskOf(mInPort, mRecirc, mEthType, mNwDst24), keyFor(2), []Action{DecTTL(), Output(1)})
	require.NoError(t, err)
	require.Equal(t, uint32(VerdictRedirect), run(t, d, tcpFrame(t, 0), ifVM1).Verdict)
	require.NoError(t, d.Close())
	require.FileExists(t, filepath.Join(dir, layout, "flows"))

	// A new daemon finds the flows, their statistics and the counters.
	d2, err := Open(Config{PinPath: dir})
	require.NoError(t, err)
	flows, err := d2.Flows()
	require.NoError(t, err)
	require.Len(t, flows, 2)
	require.Equal(t, uint64(1), flows[0].Stats.Packets)
	require.Equal(t, []Action{DecTTL(), Output(1)}, flows[1].Actions)
	require.Equal(t, 2, d2.MaskCount())
	require.Equal(t, uint64(1), counters(t, d2).MaskHits)
	require.Equal(t, uint32(VerdictRedirect), run(t, d2, tcpFrame(t, 0), ifVM1).Verdict, "ports carried over")

	// New flows get fresh ids, and replacing one works.
	_, err = d2.PutFlow(maskOf(l2Switch...), keyFor(1), []Action{Output(1)})
	require.NoError(t, err)
	require.NoError(t, d2.Destroy())
	_, err = os.Stat(filepath.Join(dir, layout))
	require.True(t, errors.Is(err, os.ErrNotExist), "Destroy removes the pins")
}

// Each output sends the packet as the actions before it left it: a
// rewrite after an output changes only the copies that follow.
func TestOutputsSeeThePacketAsAtTheirTurn(t *testing.T) {
	marker := [6]byte{0x0a, 0xbb, 0, 0, 0, 0x43}
	frame := udpFrame(t, 30)
	src := frame[6:12]
	cap2, cap3 := executeToTwoVMs(t, frame, []Action{Output(2), SetEthSrc(marker), DecTTL(), Output(3)})
	got2 := cap2.From(src, 300*time.Millisecond)
	require.Len(t, got2, 1, "vm2 gets the packet as it came, before the rewrite")
	require.Equal(t, frame[22], got2[0][22], "vm2's copy keeps its TTL")
	got3 := cap3.From(marker[:], 300*time.Millisecond)
	require.Len(t, got3, 1, "vm3 gets the rewritten packet")
	require.Equal(t, frame[22]-1, got3[0][22], "vm3's copy has its TTL decremented")
	requireValidChecksums(t, got2[0])
	requireValidChecksums(t, got3[0])
}

// A daemon of another build left its pins beside this one's: Open leaves
// them alone but says so, since their port attachments still run.
func TestOpenWarnsAboutPinsOfAnotherLayout(t *testing.T) {
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("ovsbpf-test-other-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(dir) })
	other := filepath.Join(dir, "layout-000000000000")
	require.NoError(t, os.MkdirAll(other, 0o700))

	var logs bytes.Buffer
	d, err := Open(Config{PinPath: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	require.NoError(t, err)
	require.NoError(t, d.Destroy())
	require.Contains(t, logs.String(), "pins of another datapath layout")
	require.Contains(t, logs.String(), other)
	require.DirExists(t, other, "another build's pins are not this one's to remove")
	layout, err := LayoutVersion()
	require.NoError(t, err)
	require.Equal(t, 1, strings.Count(logs.String(), "pins of another datapath layout"), "its own layout is no other: %s", layout)
}
