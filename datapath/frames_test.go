package datapath

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/testframe"
)

// Frames for the datapath tests, built with gopacket so that lengths and
// checksums are right before the datapath touches them.

var (
	macVM1 = net.HardwareAddr{0x0a, 0, 0, 0, 0, 0x01}
	macVM2 = net.HardwareAddr{0x0a, 0, 0, 0, 0, 0x02}
	ipVM1  = net.IPv4(10, 0, 0, 1).To4()
	ipVM2  = net.IPv4(10, 0, 0, 2).To4()
	ip6VM1 = net.ParseIP("fd00::1")
	ip6VM2 = net.ParseIP("fd00::2")
)

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	return testframe.Serialize(t, ls...)
}

func ethLayer(typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{SrcMAC: macVM1, DstMAC: macVM2, EthernetType: typ}
}

func ipv4Layer(proto layers.IPProtocol) *layers.IPv4 {
	return &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: ipVM1, DstIP: ipVM2, Id: 7}
}

func tcpFrame(t testing.TB, payload int) []byte {
	return serialize(t, ethLayer(layers.EthernetTypeIPv4), ipv4Layer(layers.IPProtocolTCP),
		&layers.TCP{SrcPort: 40000, DstPort: 80, SYN: true, Seq: 1, Window: 1000}, gopacket.Payload(make([]byte, payload)))
}

func udpFrame(t testing.TB, payload int) []byte {
	return serialize(t, ethLayer(layers.EthernetTypeIPv4), ipv4Layer(layers.IPProtocolUDP),
		&layers.UDP{SrcPort: 5000, DstPort: 53}, gopacket.Payload(fill(payload)))
}

func icmpFrame(t testing.TB) []byte {
	return serialize(t, ethLayer(layers.EthernetTypeIPv4), ipv4Layer(layers.IPProtocolICMPv4),
		&layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(8, 0), Id: 1, Seq: 1}, gopacket.Payload(fill(32)))
}

func udp6Frame(t testing.TB) []byte {
	return serialize(t, ethLayer(layers.EthernetTypeIPv6),
		&layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: ip6VM1, DstIP: ip6VM2},
		&layers.UDP{SrcPort: 5000, DstPort: 53}, gopacket.Payload(fill(20)))
}

func arpRequest(t testing.TB) []byte {
	return serialize(t, &layers.Ethernet{SrcMAC: macVM1, DstMAC: layers.EthernetBroadcast, EthernetType: layers.EthernetTypeARP},
		&layers.ARP{AddrType: layers.LinkTypeEthernet, Protocol: layers.EthernetTypeIPv4, HwAddressSize: 6, ProtAddressSize: 4,
			Operation: 1, SourceHwAddress: macVM1, SourceProtAddress: ipVM1, DstHwAddress: make([]byte, 6), DstProtAddress: ipVM2})
}

func fill(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + 3)
	}
	return b
}

// checksum16 is the Internet checksum's ones-complement sum of b.
func checksum16(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// requireValidChecksums checks the IPv4 header checksum and the TCP or UDP
// checksum of an untagged Ethernet frame the way a receiving stack would.
func requireValidChecksums(t testing.TB, f []byte) {
	t.Helper()
	typ := binary.BigEndian.Uint16(f[12:])
	l3 := f[14:]
	var pseudo uint32
	var proto byte
	var l4 []byte
	switch typ {
	case 0x0800:
		ihl := int(l3[0]&0x0f) * 4
		require.Equal(t, uint16(0xffff), fold(checksum16(0, l3[:ihl])), "IPv4 header checksum")
		total := int(binary.BigEndian.Uint16(l3[2:]))
		proto = l3[9]
		if binary.BigEndian.Uint16(l3[6:])&0x1fff != 0 {
			return // a later fragment has no L4 header
		}
		l4 = l3[ihl:total]
		pseudo = checksum16(0, l3[12:20]) + uint32(proto) + uint32(len(l4))
	case 0x86dd:
		proto = l3[6]
		l4 = l3[40 : 40+int(binary.BigEndian.Uint16(l3[4:]))]
		pseudo = checksum16(0, l3[8:40]) + uint32(proto) + uint32(len(l4))
	default:
		return
	}
	switch proto {
	case 6:
		require.Equal(t, uint16(0xffff), fold(checksum16(pseudo, l4)), "TCP checksum")
	case 17:
		if binary.BigEndian.Uint16(l4[6:]) == 0 && typ == 0x0800 {
			return // no UDP checksum
		}
		require.Equal(t, uint16(0xffff), fold(checksum16(pseudo, l4)), "UDP checksum")
	case 1:
		require.Equal(t, uint16(0xffff), fold(checksum16(0, l4)), "ICMP checksum")
	}
}
