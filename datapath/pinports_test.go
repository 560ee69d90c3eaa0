package datapath

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/netns"
)

// A port attached by one daemon comes back, with its interface's name and
// its attachment, in the next: bpffs holds nothing but pins, so the name
// is the interface's, found by the ifindex the port table keeps.
func TestPinnedPortsComeBackWithTheirNames(t *testing.T) {
	chassis := netns.New(t, "ovsbpf-chassis")
	netns.AddVM(t, chassis, "h1")
	netns.AddVM(t, chassis, "h2")
	dir := filepath.Join("/sys/fs/bpf", fmt.Sprintf("ovsbpf-test-ports-%d", os.Getpid()))
	t.Cleanup(func() { os.RemoveAll(dir) })

	var want []Port
	require.NoError(t, chassis.Do(func() error {
		d, err := Open(Config{PinPath: dir})
		if err != nil {
			return err
		}
		for no, name := range []string{"h1", "h2"} {
			ifi, err := net.InterfaceByName(name)
			if err != nil {
				return err
			}
			p := Port{No: uint16(no + 1), Ifindex: uint32(ifi.Index), Name: name, Peer: no == 1}
			if err := d.AddPort(p); err != nil {
				return err
			}
			want = append(want, p)
		}
		return d.Close()
	}))
	require.NoError(t, chassis.Do(func() error {
		d, err := Open(Config{PinPath: dir})
		if err != nil {
			return err
		}
		defer d.Destroy()
		if got := d.Ports(); fmt.Sprint(got) != fmt.Sprint(want) {
			return fmt.Errorf("recovered ports %v, want %v", got, want)
		}
		for _, p := range want {
			if d.ports[p.No].link == nil {
				return fmt.Errorf("port %d came back without its attachment", p.No)
			}
		}
		return nil
	}))
}
