package datapath

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ovsbpf/ovsbpf/bpf/testprogs"
	"github.com/ovsbpf/ovsbpf/internal/netns"
)

// jumboMTU lets a VM send frames larger than a page, the ones a packet
// socket builds non-linear.
const jumboMTU = 9000

// nonLinearLen is the length of the test's frames: more than a page, so
// that the kernel puts only the first hdr_len bytes in the linear part.
const nonLinearLen = 5000

// sendNonLinear sends frame count times from ifname inside n through a
// packet socket with PACKET_VNET_HDR and a virtio_net_hdr whose hdr_len is
// linear: for a frame larger than a page the kernel allocates exactly
// max(hdr_len, 14) bytes of linear data and puts the rest in page
// fragments, so the skb the datapath sees has its headers past the linear
// part when hdr_len is small.
func sendNonLinear(n *netns.NS, ifname string, frame []byte, linear uint16, count int) error {
	return n.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
			return fmt.Errorf("PACKET_VNET_HDR: %w", err)
		}
		// struct virtio_net_hdr: flags, gso_type (none), hdr_len,
		// gso_size, csum_start, csum_offset; no offload asked for.
		var hdr [10]byte
		binary.LittleEndian.PutUint16(hdr[2:], linear)
		buf := append(hdr[:], frame...)
		addr := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		for range count {
			if err := unix.Sendto(fd, buf, 0, addr); err != nil {
				return fmt.Errorf("sending on %s in %s: %w", ifname, n.Name, err)
			}
		}
		return nil
	})
}

// skbProbe is testprogs' skb_shape attached to an interface's ingress
// ahead of the datapath: it records how much of each large packet was
// linear when the datapath got it.
type skbProbe struct {
	objs testprogs.SkbShapeObjects
}

func attachProbe(t *testing.T, chassis *netns.NS, ifname string, minLen uint32) *skbProbe {
	t.Helper()
	spec, err := testprogs.LoadSkbShape()
	require.NoError(t, err)
	require.NoError(t, spec.Variables[testprogs.SkbShapeVarMinLen].Set(minLen))
	p := &skbProbe{}
	require.NoError(t, spec.LoadAndAssign(&p.objs, nil))
	t.Cleanup(func() { p.objs.Close() })
	var l link.Link
	require.NoError(t, chassis.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		l, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: p.objs.SkbShape,
			Attach: ebpf.AttachTCXIngress, Anchor: link.Head()})
		return err
	}))
	t.Cleanup(func() { l.Close() })
	return p
}

func (p *skbProbe) shape(t *testing.T) testprogs.SkbShapeShapeRecord {
	t.Helper()
	var s testprogs.SkbShapeShapeRecord
	require.NoError(t, p.objs.Shape.Lookup(uint32(0), &s))
	return s
}

// A packet whose headers are not all in the skb's linear part is parsed,
// looked up and forwarded like any other: the parser pulls the headers in.
// A probe ahead of the datapath shows that each skb really was non-linear,
// so the test cannot pass on linear packets by accident.
func TestNonLinearHeadersArePulled(t *testing.T) {
	chassis := netns.New(t, "ovsbpf-chassis")
	vm1 := netns.AddVM(t, chassis, "h1")
	vm2 := netns.AddVM(t, chassis, "h2")
	for _, dev := range []struct {
		ns   *netns.NS
		name string
	}{{chassis, "h1"}, {chassis, "h2"}, {vm1, "eth0"}, {vm2, "eth0"}} {
		dev.ns.MustRun(t, "ip", "link", "set", dev.name, "mtu", fmt.Sprint(jumboMTU))
	}
	cap2 := netns.NewCapture(t, vm2, "eth0")
	mac1, err := vm1.MAC("eth0")
	require.NoError(t, err)

	var d *Datapath
	require.NoError(t, chassis.Do(func() error {
		var err error
		if d, err = Open(Config{}); err != nil {
			return err
		}
		return namedPorts(d, true, "h1", "h2")
	}))
	t.Cleanup(func() { d.Close() })
	rd := upcallReader(t, d)
	probe := attachProbe(t, chassis, "h1", nonLinearLen)

	// The megaflow matches on the UDP destination port, which lies past
	// the linear part in every case: a hit proves the parser read it.
	udpTo := func(dport layers.UDPPort) []byte {
		f := serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: macVM2, EthernetType: layers.EthernetTypeIPv4},
			ipv4Layer(layers.IPProtocolUDP), &layers.UDP{SrcPort: 5000, DstPort: dport},
			gopacket.Payload(fill(nonLinearLen-14-20-8)))
		require.Len(t, f, nonLinearLen)
		return f
	}
	var k Key
	k.InPort = 1
	k.SetEtherType(EthTypeIPv4)
	k.NwProto = 17
	k.SetL4Dst(4789)
	_, err = d.PutFlow(maskOf(mInPort, mRecirc, mEthType, mNwProto, mL4Dst), k, []Action{Output(2)})
	require.NoError(t, err)

	const count = 3
	tests := []struct {
		name   string
		linear uint16 // the vnet header's hdr_len
		frame  []byte
	}{
		{"only Ethernet linear", 14, udpTo(4789)},
		{"Ethernet and IPv4 linear, UDP not", 14 + 20, udpTo(4789)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := probe.shape(t)
			require.NoError(t, sendNonLinear(vm1, "eth0", tt.frame, tt.linear, count))
			got := cap2.From(mac1, 300*time.Millisecond)

			s := probe.shape(t)
			require.Equal(t, before.Seen+count, s.Seen, "the probe saw every frame")
			require.Equal(t, uint32(nonLinearLen), s.Len)
			require.Equal(t, uint32(tt.linear), s.Linear, "the datapath got a non-linear skb")

			require.Empty(t, counters(t, d).Drops, "nothing dropped as malformed")
			require.Len(t, got, count, "every frame forwarded to vm2")
			for _, f := range got {
				require.True(t, bytes.Equal(tt.frame, f), "forwarded unchanged")
			}
		})
	}
	flows, err := d.Flows()
	require.NoError(t, err)
	require.Len(t, flows, 1)
	require.Equal(t, uint64(count*len(tests)), flows[0].Stats.Packets, "every frame hit the megaflow")

	// A miss goes up with the key read from the pulled headers.
	require.NoError(t, sendNonLinear(vm1, "eth0", udpTo(53), 14, 1))
	u := readUpcall(t, rd)
	require.Equal(t, UpcallMiss, u.Reason)
	require.Equal(t, uint32(nonLinearLen), u.FrameLen)
	n := u.Key.Narrow()
	require.Equal(t, uint16(53), n.L4Dst())
	require.Equal(t, uint16(5000), n.L4Src())
	require.Equal(t, "10.0.0.2", n.IPv4Dst().String())
	require.Equal(t, uint32(14), probe.shape(t).Linear)

	// A neighbour solicitation whose options lie past the linear part:
	// the parser succeeds on the linear part alone, but without the pull
	// the key would lack the source link-layer address. The second option
	// (255 8-byte units of an unknown type) and a tail the parser never
	// reads make the frame larger than a page.
	const ndLinear = 14 + 40 + 8 + 16     // up to the target address
	opts := append([]byte{1, 1}, mac1...) // source link-layer address
	opts = append(opts, 200, 255)         // unknown, 255 units long
	opts = append(opts, make([]byte, 255*8-2)...)
	ns := serialize(t, &layers.Ethernet{SrcMAC: mac1, DstMAC: macVM2, EthernetType: layers.EthernetTypeIPv6},
		&layers.IPv6{Version: 6, HopLimit: 255, NextHeader: layers.IPProtocolICMPv6, SrcIP: ip6VM1, DstIP: ip6VM2},
		&layers.ICMPv6{TypeCode: layers.CreateICMPv6TypeCode(layers.ICMPv6TypeNeighborSolicitation, 0)},
		&layers.ICMPv6NeighborSolicitation{TargetAddress: ip6VM2},
		gopacket.Payload(append(opts, fill(nonLinearLen-ndLinear-len(opts))...)))
	require.Len(t, ns, nonLinearLen)
	require.NoError(t, sendNonLinear(vm1, "eth0", ns, ndLinear, 1))
	u = readUpcall(t, rd)
	require.Equal(t, uint32(ndLinear), probe.shape(t).Linear, "the options were not linear")
	require.Equal(t, UpcallMiss, u.Reason)
	require.Equal(t, ip6VM2.String(), net.IP(u.Key.W.NdTarget[:]).String())
	require.Equal(t, mac1.String(), net.HardwareAddr(u.Key.W.NdSll[:]).String(), "the option past the linear part was read")
	require.Empty(t, counters(t, d).Drops)
}
