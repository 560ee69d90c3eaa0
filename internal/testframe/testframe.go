// Package testframe builds Ethernet frames for tests, with gopacket, their
// lengths and checksums filled in, and says which frames
// BPF_PROG_TEST_RUN refuses before a program sees them.
package testframe

import (
	"encoding/binary"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/stretchr/testify/require"
)

// Serialize lays out ls as one frame, with lengths and checksums computed:
// every layer that checksums a pseudo-header (TCP, UDP, ICMPv6) gets the
// frame's network layer for it.
func Serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	for _, l := range ls {
		if c, ok := l.(interface {
			SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
		}); ok {
			for _, nl := range ls {
				if ip, ok := nl.(gopacket.NetworkLayer); ok {
					require.NoError(t, c.SetNetworkLayerForChecksum(ip))
				}
			}
		}
	}
	buf := gopacket.NewSerializeBuffer()
	require.NoError(t, gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...))
	return buf.Bytes()
}

// RefusedByTestRun reports whether BPF_PROG_TEST_RUN rejects a frame for a
// TC program before the program sees it: shorter than an Ethernet header,
// or IPv4 or IPv6 (by the outer type) shorter than that header.
func RefusedByTestRun(b []byte) bool {
	if len(b) < 14 {
		return true
	}
	switch layers.EthernetType(binary.BigEndian.Uint16(b[12:])) {
	case layers.EthernetTypeIPv4:
		return len(b) < 14+20
	case layers.EthernetTypeIPv6:
		return len(b) < 14+40
	}
	return false
}
