package datapath

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ovsbpf/ovsbpf/internal/netns"
)

// vmLink is a veth pair: host side in the chassis namespace, eth0 in a VM
// namespace.
func vmLink(t *testing.T, chassis *netns.NS, host string) *netns.NS {
	t.Helper()
	vm := netns.New(t, "ovsbpf-vm")
	// No IPv6: its router and neighbour solicitations would be traffic
	// the tests did not send.
	vm.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	chassis.MustRun(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", vm.Name)
	chassis.MustRun(t, "ip", "link", "set", host, "up")
	vm.MustRun(t, "ip", "link", "set", "eth0", "up")
	return vm
}

// capture opens a packet socket on eth0 inside vm.
func capture(t *testing.T, vm *netns.NS) int {
	t.Helper()
	var fd int
	require.NoError(t, vm.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}))
	t.Cleanup(func() { unix.Close(fd) })
	tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
	require.NoError(t, unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv))
	return fd
}

func htons(v uint16) uint16 { return v>>8 | v<<8 }

// received returns the frames with the test's source MACs that arrived on
// fd within d (the kernel's own IPv6 chatter is ignored).
func received(fd int, d time.Duration, srcs ...[]byte) [][]byte {
	var out [][]byte
	buf := make([]byte, 2048)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			continue
		}
		for _, s := range srcs {
			if n >= 12 && bytes.Equal(buf[6:12], s) {
				out = append(out, append([]byte(nil), buf[:n]...))
			}
		}
	}
	return out
}

func TestExecuteDeliversLikeTheFastPath(t *testing.T) {
	chassis := netns.New(t, "ovsbpf-chassis")
	vm2 := vmLink(t, chassis, "h2")
	vm3 := vmLink(t, chassis, "h3")
	fd2, fd3 := capture(t, vm2), capture(t, vm3)

	marker := [6]byte{0x0a, 0xbb, 0, 0, 0, 0x42}
	frame := udpFrame(t, 30)
	require.NoError(t, chassis.Do(func() error {
		d, err := Open(Config{})
		if err != nil {
			return err
		}
		defer d.Close()
		for _, p := range []struct {
			no   uint16
			name string
		}{{1, "lo"}, {2, "h2"}, {3, "h3"}} {
			ifi, err := net.InterfaceByName(p.name)
			if err != nil {
				return err
			}
			if err := d.SetPort(Port{No: p.no, Ifindex: uint32(ifi.Index), Name: p.name}); err != nil {
				return err
			}
		}
		x, err := d.NewExecutor()
		if err != nil {
			return err
		}
		defer x.Close()
		// Two outputs: a clone to each VM, the rewrite applying to both.
		return x.Execute(frame, 1, []Action{SetEthSrc(marker), DecTTL(), Output(2), Output(3)})
	}))
	for _, fd := range []int{fd2, fd3} {
		got := received(fd, 300*time.Millisecond, marker[:])
		require.Len(t, got, 1, "exactly one copy per output")
		require.Equal(t, byte(63), got[0][22], "decremented TTL")
		requireValidChecksums(t, got[0])
	}
}

func TestAttachedPortForwardsRealTraffic(t *testing.T) {
	chassis := netns.New(t, "ovsbpf-chassis")
	vm1 := vmLink(t, chassis, "h1")
	vm2 := vmLink(t, chassis, "h2")
	fd2 := capture(t, vm2)
	var mac1 net.HardwareAddr
	require.NoError(t, vm1.Do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		mac1 = ifi.HardwareAddr
		return err
	}))

	require.NoError(t, chassis.Do(func() error {
		d, err := Open(Config{})
		if err != nil {
			return err
		}
		defer d.Close()
		for _, p := range []struct {
			no   uint16
			name string
		}{{1, "h1"}, {2, "h2"}} {
			ifi, err := net.InterfaceByName(p.name)
			if err != nil {
				return err
			}
			if err := d.AddPort(Port{No: p.no, Ifindex: uint32(ifi.Index), Name: p.name, Peer: p.no == 2}); err != nil {
				return err
			}
		}
		// Everything vm1 sends goes to vm2, into its namespace directly.
		if _, err := d.PutFlow(Mask{InPort: 0xffff}, Key{InPort: 1}, []Action{Output(2)}); err != nil {
			return err
		}
		// vm1 sends five frames with its own source MAC.
		f := serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: macVM2, EthernetType: layers.EthernetTypeIPv4},
			ipv4Layer(layers.IPProtocolUDP), &layers.UDP{SrcPort: 1, DstPort: 2})
		if err := vm1.Do(func() error { return sendFrames("eth0", f, 5) }); err != nil {
			return err
		}
		got := received(fd2, 300*time.Millisecond, mac1)
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
		if err := vm1.Do(func() error { return sendFrames("eth0", f, 3) }); err != nil {
			return err
		}
		if got := received(fd2, 200*time.Millisecond, mac1); len(got) != 0 {
			return fmt.Errorf("vm2 received %d frames after its port was deleted", len(got))
		}
		return nil
	}))
}

// sendFrames writes frame n times on ifname with a packet socket.
func sendFrames(ifname string, frame []byte, n int) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	addr := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
	for i := 0; i < n; i++ {
		if err := unix.Sendto(fd, frame, 0, addr); err != nil {
			return fmt.Errorf("sending on %s: %w", ifname, err)
		}
	}
	return nil
}

func TestPinnedDatapathOutlivesTheProcessHandles(t *testing.T) {
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("ovsbpf-test-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(dir) })

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
	require.FileExists(t, filepath.Join(dir, LayoutVersion, "flows"))

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
	_, err = os.Stat(filepath.Join(dir, LayoutVersion))
	require.True(t, errors.Is(err, os.ErrNotExist), "Destroy removes the pins")
}
