package field

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestValueShifts(t *testing.T) {
	tests := []struct {
		name string
		got  Value
		want Value
	}{
		{"ones 0", Ones(0), Value{}},
		{"ones 64", Ones(64), Value{Lo: ^uint64(0)}},
		{"ones 70", Ones(70), Value{Hi: 0x3f, Lo: ^uint64(0)}},
		{"shl across", U64(1).Shl(64), Value{Hi: 1}},
		{"shl 68", U64(0xff).Shl(60), Value{Hi: 0xf, Lo: 0xf << 60}},
		{"shr across", Value{Hi: 1}.Shr(1), Value{Lo: 1 << 63}},
		{"range", Range(96, 32), Value{Hi: 0xffffffff00000000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { require.Equal(t, tt.want, tt.got) })
	}
}

func TestHex(t *testing.T) {
	require.Equal(t, "0", Value{}.Hex())
	require.Equal(t, "0x1", U64(1).Hex())
	require.Equal(t, "0xff01", U64(0xff01).Hex())
	require.Equal(t, "0x10000", U64(0x10000).Hex())
	require.Equal(t, "0x1000000000000000000000000", Value{Hi: 1 << 32}.Hex())
}

// Overlapping fields share storage the way OpenFlow defines it.
func TestRegisterOverlay(t *testing.T) {
	var k Key
	k.Set(Reg(0), U64(0x11111111))
	k.Set(Reg(1), U64(0x22222222))
	k.Set(Reg(3), U64(0x44444444))
	require.Equal(t, U64(0x1111111122222222), k.Get(XReg(0)))
	require.Equal(t, Value{Hi: 0x1111111122222222, Lo: 0x44444444}, k.Get(XXReg(0)))

	k.SetSub(Subfield{Field: XXReg(0), Ofs: 96, Bits: 32}, U64(0xabcd))
	require.Equal(t, U64(0xabcd), k.Get(Reg(0)))
	require.Equal(t, U64(0x22222222), k.Get(Reg(1)))
}

func TestSharedHeaderStorage(t *testing.T) {
	var k Key
	k.Set(IPv4Src, U64(0x0a000001))
	require.Equal(t, U64(0x0a000001), k.Get(ARPSPA))
	k.Set(TCPSrc, U64(0x0308))
	require.Equal(t, U64(0x08), k.Get(ICMPv4Type), "icmp type is the low byte of tp_src")
	k.Set(IPDSCP, U64(0x2e))
	k.Set(IPECN, U64(1))
	require.Equal(t, U64(0x2e), k.Get(IPDSCP))
	require.Equal(t, U64(1), k.Get(IPECN))
}

func TestMaskRecording(t *testing.T) {
	var m Mask
	m.AddField(Reg(0), U64(1<<15))
	require.Equal(t, U64(1<<15), m.Get(Reg(0)))
	m.AddField(IPDSCP, Ones(6))
	require.Equal(t, U64(0xfc), m.Get(IPDSCP).Shl(2).Or(m.Get(IPECN)))
}

func TestPrereqOK(t *testing.T) {
	var k Key
	k.Set(EthType, U64(EthTypeIPv6))
	k.Set(IPProto, U64(ProtoICMPv6))
	k.Set(ICMPv6Type, U64(135))
	require.True(t, k.PrereqOK(PrereqNDSolicit))
	require.False(t, k.PrereqOK(PrereqNDAdvert))
	require.True(t, k.PrereqOK(PrereqIP))
	require.False(t, k.PrereqOK(PrereqTCP))
}

func TestFormatValue(t *testing.T) {
	require.Equal(t, "00:00:00:00:ff:01", FormatValue(EthSrc, U64(0xff01)))
	require.Equal(t, "10.0.0.1", FormatValue(IPv4Dst, U64(0x0a000001)))
	require.Equal(t, "fe80::1", FormatValue(IPv6Src, Value{Hi: 0xfe80 << 48, Lo: 1}))
	require.Equal(t, "64", FormatValue(IPTTL, U64(64)))
	require.Equal(t, "0x800", FormatValue(EthType, U64(0x800)))
	require.Equal(t, "est|trk", FormatValue(CTState, U64(CSEst|CSTrk)))
}
