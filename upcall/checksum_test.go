package upcall

import (
	"encoding/binary"
	"net"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/testframe"
)

func l4Frame(t *testing.T, v6 bool, tcp bool) (frame []byte, csumAt int) {
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, EthernetType: layers.EthernetTypeIPv4}
	proto := layers.IPProtocolUDP
	if tcp {
		proto = layers.IPProtocolTCP
	}
	var ip gopacket.SerializableLayer = &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.IPv4(10, 0, 0, 1), DstIP: net.IPv4(10, 0, 0, 2)}
	l4off := 14 + 20
	if v6 {
		eth.EthernetType = layers.EthernetTypeIPv6
		ip = &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.ParseIP("fd00::1"), DstIP: net.ParseIP("fd00::2")}
		l4off = 14 + 40
	}
	var l4 gopacket.SerializableLayer = &layers.UDP{SrcPort: 1, DstPort: 2}
	at := l4off + 6
	if tcp {
		l4, at = &layers.TCP{SrcPort: 1, DstPort: 2, SYN: true, Window: 100}, l4off+16
	}
	return testframe.Serialize(t, eth, ip, l4, gopacket.Payload("some payload bytes")), at
}

// partial rewrites frame's checksum the way a sender leaving it to offload
// does: the folded pseudo-header sum.
func partial(frame []byte, at int, v6 bool) {
	var pseudo uint32
	var l4len int
	proto := uint32(frame[14+9])
	if v6 {
		pseudo = sum16(0, frame[14+8:14+40])
		proto = uint32(frame[14+6])
		l4len = len(frame) - 14 - 40
	} else {
		pseudo = sum16(0, frame[14+12:14+20])
		l4len = len(frame) - 14 - 20
	}
	binary.BigEndian.PutUint16(frame[at:], fold(pseudo+proto+uint32(l4len)))
}

func TestCompleteChecksum(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v6, tcp bool
	}{{"udp4", false, false}, {"tcp4", false, true}, {"udp6", true, false}, {"tcp6", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			good, at := l4Frame(t, tc.v6, tc.tcp)
			f := append([]byte(nil), good...)
			require.False(t, completeChecksum(f), "a complete checksum stays")
			require.Equal(t, good, f)

			partial(f, at, tc.v6)
			require.NotEqual(t, good, f)
			require.True(t, completeChecksum(f))
			require.Equal(t, good, f, "the completed checksum is the real one")

			bad := append([]byte(nil), good...)
			bad[at] ^= 0x55
			want := append([]byte(nil), bad...)
			require.False(t, completeChecksum(bad), "a wrong checksum is not ours to fix")
			require.Equal(t, want, bad)
		})
	}
	require.False(t, completeChecksum([]byte{1, 2, 3}))
}
