package upcall

import (
	"net"
	"net/netip"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

func macValue(s string) field.Value {
	hw, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return field.FromBytes(hw)
}

func ipValue(s string) field.Value { return field.FromBytes(netip.MustParseAddr(s).AsSlice()) }

// tcpKey is the datapath key of a TCP packet 10.0.0.1:40000 -> 10.0.0.2:80
// from port 3.
func tcpKey() datapath.PacketKey {
	var n datapath.Key
	n.InPort = 3
	n.EthSrc = [6]byte{0x0a, 0, 0, 0, 0, 1}
	n.EthDst = [6]byte{0x0a, 0, 0, 0, 0, 2}
	n.SetEtherType(datapath.EthTypeIPv4)
	n.SetIPv4Src(netip.MustParseAddr("10.0.0.1"))
	n.SetIPv4Dst(netip.MustParseAddr("10.0.0.2"))
	n.NwProto, n.NwTtl, n.NwTos = 6, 64, 0xb8
	n.SetL4Src(40000)
	n.SetL4Dst(80)
	n.CtZone, n.CtMark = 7, 0x12345678
	var pk datapath.PacketKey
	pk.SetNarrow(n)
	return pk
}

func arpKey() datapath.PacketKey {
	var n datapath.Key
	n.InPort = 1
	n.EthSrc = [6]byte{0x0a, 0, 0, 0, 0, 1}
	n.EthDst = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	n.SetEtherType(datapath.EthTypeARP)
	n.SetIPv4Src(netip.MustParseAddr("10.0.0.1"))
	n.SetIPv4Dst(netip.MustParseAddr("10.0.0.2"))
	n.NwProto = 1
	n.SetARPSHA([6]byte{0x0a, 0, 0, 0, 0, 1})
	var pk datapath.PacketKey
	pk.SetNarrow(n)
	return pk
}

func TestPacketFields(t *testing.T) {
	tcp := tcpKey()
	k := PacketFields(&tcp)
	require.Equal(t, uint64(3), k.Get(field.InPort).Lo)
	require.Equal(t, macValue("0a:00:00:00:00:01"), k.Get(field.EthSrc))
	require.Equal(t, macValue("0a:00:00:00:00:02"), k.Get(field.EthDst))
	require.Equal(t, uint64(0x0800), k.Get(field.EthType).Lo)
	require.Equal(t, ipValue("10.0.0.1"), k.Get(field.IPv4Src))
	require.Equal(t, ipValue("10.0.0.2"), k.Get(field.IPv4Dst))
	require.Equal(t, uint64(6), k.Get(field.IPProto).Lo)
	require.Equal(t, uint64(64), k.Get(field.IPTTL).Lo)
	require.Equal(t, uint64(0xb8>>2), k.Get(field.IPDSCP).Lo)
	require.Equal(t, uint64(40000), k.Get(field.TCPSrc).Lo)
	require.Equal(t, uint64(80), k.Get(field.TCPDst).Lo)
	require.Equal(t, uint64(7), k.Get(field.CTZone).Lo)
	require.Equal(t, uint64(0x12345678), k.Get(field.CTMark).Lo)

	arp := arpKey()
	k = PacketFields(&arp)
	require.Equal(t, uint64(1), k.Get(field.ARPOp).Lo)
	require.Equal(t, ipValue("10.0.0.2"), k.Get(field.ARPTPA))
	require.Equal(t, macValue("0a:00:00:00:00:01"), k.Get(field.ARPSHA))
	require.True(t, k.Get(field.CTZone).IsZero(), "ARP's hardware addresses are not conntrack fields")
	require.True(t, k.Get(field.TCPSrc).IsZero())
}

func TestMegaflowMask(t *testing.T) {
	read := func(ids ...any) field.Mask {
		var m field.Mask
		for i := 0; i < len(ids); i++ {
			id := ids[i].(field.ID)
			bits := field.Ones(field.Lookup(id).Bits)
			if i+1 < len(ids) {
				if v, ok := ids[i+1].(field.Value); ok {
					bits = v
					i++
				}
			}
			m.AddField(id, bits)
		}
		return m
	}
	tcp, arp := tcpKey(), arpKey()
	recirculated := tcpKey()
	recirculated.N.RecircId = 0x12345678
	tests := []struct {
		name string
		pk   *datapath.PacketKey
		read field.Mask
		want string // FormatFlow of the packet under the mask, or the field an error names
		err  error
	}{
		{"l2 lookup", &tcp, read(field.EthDst, field.Reg(14), field.Metadata),
			"recirc_id(0),in_port(3),eth(dst=0a:00:00:00:00:02)", nil},
		{"multicast bit", &tcp, read(field.EthDst, macValue("01:00:00:00:00:00")),
			"recirc_id(0),in_port(3),eth(dst=00:00:00:00:00:00/01:00:00:00:00:00)", nil},
		{"a /24 needs eth_type", &tcp, read(field.IPv4Dst, ipValue("255.255.255.0")),
			"recirc_id(0),in_port(3),eth_type(0x0800),ipv4(dst=10.0.0.0/255.255.255.0)", nil},
		{"l4 ports need the protocol", &tcp, read(field.UDPDst),
			"recirc_id(0),in_port(3),eth_type(0x0800),ipv4(proto=6,frag=no),tcp(dst=80)", nil},
		{"dscp is the tos byte", &tcp, read(field.EthType, field.IPDSCP),
			"recirc_id(0),in_port(3),eth_type(0x0800),ipv4(tos=0xb8/0xfc)", nil},
		{"the tos byte needs eth_type", &tcp, read(field.IPDSCP),
			"recirc_id(0),in_port(3),eth_type(0x0800),ipv4(tos=0xb8/0xfc)", nil},
		{"recirc_id is exact, all 32 bits", &recirculated, read(field.EthDst),
			"recirc_id(0x12345678),in_port(3),eth(dst=0a:00:00:00:00:02)", nil},
		{"conntrack fields", &tcp, read(field.CTZone, field.CTMark, field.CTState, field.U64(field.CSTrk)),
			"recirc_id(0),in_port(3),ct_state(-trk),ct_zone(0x7),ct_mark(0x12345678),eth_type(0x0800)", nil},
		{"arp", &arp, read(field.EthType, field.ARPOp, field.ARPTPA, field.ARPSHA),
			"recirc_id(0),in_port(1),eth_type(0x0806),arp(tip=10.0.0.2,op=1,sha=0a:00:00:00:00:01)", nil},
		{"ipv6 address", &tcp, read(field.EthType, field.IPv6Src), field.Lookup(field.IPv6Src).Name, ErrUncacheable},
		{"tunnel id", &tcp, read(field.TunID), field.Lookup(field.TunID).Name, ErrUncacheable},
		{"pkt_mark", &tcp, read(field.PktMark), field.Lookup(field.PktMark).Name, ErrUncacheable},
		{"nd_sll on a non-arp packet", &tcp, read(field.NDSLL), field.Lookup(field.NDSLL).Name, ErrUncacheable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := MegaflowMask(&tc.read, tc.pk)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			k := tc.pk.Narrow()
			k = k.And(&m)
			require.Equal(t, tc.want, datapath.FormatFlow(&k, &m))
		})
	}
}

// Each flowxlate field copied to or from the narrow key lands on one field
// of the generated key of its own size (ARP's addresses, which overlay
// several, are checked against the object's BTF in datapath's
// TestLayoutMatchesBTF).
func TestByteMapsMatchTheNarrowKey(t *testing.T) {
	key := reflect.TypeFor[datapath.Key]()
	at := map[int]reflect.StructField{}
	for i := range key.NumField() {
		if f := key.Field(i); f.Name != "_" {
			at[int(f.Offset)] = f
		}
	}
	for _, bm := range append(append([]byteMap{}, commonNarrow...), l4Narrow...) {
		d := field.Lookup(bm.id)
		f, ok := at[bm.off]
		require.True(t, ok, "%s: offset %d starts no field of the narrow key", d.Name, bm.off)
		require.Equal(t, int(f.Type.Size()), d.Size, "%s is stored in %s", d.Name, f.Name)
	}
	for _, bm := range arpNarrow {
		require.LessOrEqual(t, bm.off+field.Lookup(bm.id).Size, datapath.KeySize)
	}
}
