package upcall

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

func TestCacheEntry(t *testing.T) {
	pk := tcpKey()
	var l2 field.Mask
	l2.AddField(field.InPort, field.Ones(32))
	l2.AddField(field.EthDst, field.Ones(48))
	var v6 field.Mask
	v6.AddField(field.IPv6Dst, field.Ones(128))
	out := []datapath.Action{datapath.Output(2)}
	long := make([]datapath.Action, datapath.MaxActions+1)
	for i := range long {
		long[i] = datapath.Output(uint16(i + 1))
	}
	tests := []struct {
		name  string
		dec   Decision
		acts  []datapath.Action
		cache bool
	}{
		{"an L2 decision", Decision{Mask: l2}, out, true},
		{"the pipeline says no", Decision{Mask: l2, NoCache: "conntrack"}, out, false},
		{"a field the narrow key lacks", Decision{Mask: v6}, out, false},
		{"a flood to 256 ports", Decision{Mask: l2}, long[:256], true},
		{"more actions than a megaflow holds", Decision{Mask: l2}, long, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CacheEntry(&pk, &tt.dec, tt.acts)
			if !tt.cache {
				require.True(t, errors.Is(err, ErrUncacheable), "%v", err)
				return
			}
			require.NoError(t, err)
			n := pk.Narrow()
			require.Equal(t, n.And(&f.Mask), f.Key, "the key is masked")
			require.Equal(t, n.EthDst, f.Key.EthDst)
			require.Zero(t, f.Key.EthSrc, "eth_src is not matched")
			require.Equal(t, tt.acts, f.Actions)
		})
	}
}

func TestMegaflowsOverlap(t *testing.T) {
	pk := tcpKey()
	dst := func(bits int) Megaflow {
		var m datapath.Mask
		m.InPort = 0xffff
		m.SetEtherType(0xffff)
		p := netip.PrefixFrom(netip.MustParseAddr("255.255.255.255"), bits).Masked().Addr()
		m.SetIPv4Dst(p)
		n := pk.Narrow()
		return Megaflow{Mask: m, Key: n.And(&m)}
	}
	port := func(p uint16) Megaflow {
		var m datapath.Mask
		m.InPort = 0xffff
		m.SetL4Dst(0xffff)
		n := pk.Narrow()
		n.SetL4Dst(p)
		return Megaflow{Mask: m, Key: n.And(&m)}
	}
	other := dst(32)
	other.Key.SetIPv4Dst(netip.MustParseAddr("10.9.9.9"))
	tests := []struct {
		name    string
		a, b    Megaflow
		overlap bool
	}{
		{"a /24 and a /32 inside it", dst(24), dst(32), true},
		{"a /32 and another /32", dst(32), other, false},
		{"an address and a port: one packet has both", dst(32), port(80), true},
		{"two ports", port(80), port(443), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.overlap, tt.a.Overlaps(&tt.b))
			require.Equal(t, tt.overlap, tt.b.Overlaps(&tt.a), "overlap is symmetric")
		})
	}
}
