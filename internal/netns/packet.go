package netns

import (
	"bytes"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// AddVM creates a namespace that plays a VM: eth0 in it is the peer of
// host, a new veth in chassis. Both ends are up; the VM has IPv6 off, so
// that it sends only what the test makes it send.
func AddVM(t testing.TB, chassis *NS, host string) *NS {
	t.Helper()
	vm := New(t, "ovsbpf-vm")
	vm.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
	chassis.MustRun(t, "ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", vm.Name)
	chassis.MustRun(t, "ip", "link", "set", host, "up")
	vm.MustRun(t, "ip", "link", "set", "eth0", "up")
	return vm
}

// Capture is a packet socket on one interface of a namespace.
type Capture struct {
	fd int
}

func htons(v uint16) uint16 { return v>>8 | v<<8 }

// NewCapture opens a packet socket on ifname inside n, closed when t ends.
func NewCapture(t testing.TB, n *NS, ifname string) *Capture {
	t.Helper()
	c := &Capture{fd: -1}
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		c.fd = fd
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(20 * time.Millisecond))
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	if c.fd >= 0 {
		t.Cleanup(func() { unix.Close(c.fd) })
	}
	if err != nil {
		t.Fatalf("capturing on %s in %s: %v", ifname, n.Name, err)
	}
	return c
}

// From returns the frames with source MAC src that arrive within d.
func (c *Capture) From(src net.HardwareAddr, d time.Duration) [][]byte {
	var out [][]byte
	buf := make([]byte, 65536)
	for end := time.Now().Add(d); time.Now().Before(end); {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil || n < 12 {
			continue
		}
		if bytes.Equal(buf[6:12], src) {
			out = append(out, bytes.Clone(buf[:n]))
		}
	}
	return out
}

// Next returns the next frame that arrives within d (at least one wait of
// the socket's 20 ms timeout), or nil.
func (c *Capture) Next(d time.Duration) []byte {
	buf := make([]byte, 65536)
	for end := time.Now().Add(d); ; {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if err == nil && n > 0 {
			return bytes.Clone(buf[:n])
		}
		if !time.Now().Before(end) {
			return nil
		}
	}
}

// Send writes frame n times on ifname inside ns.
func (n *NS) Send(ifname string, frame []byte, count int) error {
	return n.Do(func() error {
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
		for i := 0; i < count; i++ {
			if err := unix.Sendto(fd, frame, 0, addr); err != nil {
				return fmt.Errorf("sending on %s in %s: %w", ifname, n.Name, err)
			}
		}
		return nil
	})
}

// Ifindex returns the index of ifname inside n.
func (n *NS) Ifindex(ifname string) (uint32, error) {
	var idx uint32
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		idx = uint32(ifi.Index)
		return nil
	})
	return idx, err
}

// MAC returns the hardware address of ifname inside n.
func (n *NS) MAC(ifname string) (net.HardwareAddr, error) {
	var mac net.HardwareAddr
	err := n.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		mac = ifi.HardwareAddr
		return nil
	})
	return mac, err
}
