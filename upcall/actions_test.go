package upcall

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/datapath"
	"github.com/ovsbpf/ovsbpf/flowxlate/field"
)

func TestBuildActions(t *testing.T) {
	tcp, arp := tcpKey(), arpKey()
	tcpIn, arpIn := PacketFields(&tcp), PacketFields(&arp)
	with := func(k field.Key, sets ...any) field.Key {
		for i := 0; i < len(sets); i += 2 {
			k.Set(sets[i].(field.ID), sets[i+1].(field.Value))
		}
		return k
	}
	tests := []struct {
		name string
		in   field.Key
		outs []Output
		want string
		err  error
	}{
		{"switch", tcpIn, []Output{{Port: 2, Key: tcpIn}}, "2", nil},
		{"flood", tcpIn, []Output{{Port: 1, Key: tcpIn}, {Port: 2, Key: tcpIn}, {Port: 4, Key: tcpIn}}, "1,2,4", nil},
		{"drop", tcpIn, nil, "drop", nil},
		{"router hop", tcpIn, []Output{{Port: 5, Key: with(tcpIn, field.EthSrc, macValue("0a:00:00:00:00:fe"),
			field.EthDst, macValue("0a:00:00:00:00:07"), field.IPTTL, field.U64(63))}},
			"set(eth(src=0a:00:00:00:00:fe)),set(eth(dst=0a:00:00:00:00:07)),dec_ttl,5", nil},
		{"two routers", tcpIn, []Output{{Port: 5, Key: with(tcpIn, field.IPTTL, field.U64(62))}}, "dec_ttl,dec_ttl,5", nil},
		{"dnat", tcpIn, []Output{{Port: 2, Key: with(tcpIn, field.IPv4Dst, ipValue("10.0.0.9"), field.TCPDst, field.U64(8080))}},
			"set(ipv4(dst=10.0.0.9)),set(l4(dst=8080)),2", nil},
		{"rewrites differ per output", tcpIn, []Output{{Port: 2, Key: with(tcpIn, field.EthDst, macValue("0a:00:00:00:00:02"))},
			{Port: 3, Key: with(tcpIn, field.EthDst, macValue("0a:00:00:00:00:03"))}},
			"2,set(eth(dst=0a:00:00:00:00:03)),3", nil},
		{"a router's copy listed before a switch's: the switch's goes first", tcpIn,
			[]Output{{Port: 5, Key: with(tcpIn, field.EthSrc, macValue("0a:00:00:00:00:fe"), field.IPTTL, field.U64(63))}, {Port: 2, Key: tcpIn}, {Port: 3, Key: tcpIn}},
			"2,3,set(eth(src=0a:00:00:00:00:fe)),dec_ttl,5", nil},
		{"vlan push", tcpIn, []Output{{Port: 2, Key: with(tcpIn, field.VLANTCI, field.U64(0x1000|10))}}, "push_vlan(vid=10,pcp=0),2", nil},
		{"arp responder", arpIn, []Output{{Port: 1, Key: with(arpIn,
			field.EthDst, macValue("0a:00:00:00:00:01"), field.EthSrc, macValue("0a:00:00:00:00:02"),
			field.ARPOp, field.U64(2), field.ARPTHA, macValue("0a:00:00:00:00:01"), field.ARPSHA, macValue("0a:00:00:00:00:02"),
			field.ARPTPA, ipValue("10.0.0.1"), field.ARPSPA, ipValue("10.0.0.2"))}},
			"set(eth(src=0a:00:00:00:00:02)),set(eth(dst=0a:00:00:00:00:01)),set(arp(bytes@7=020a0000000002)),set(arp(bytes@17=020a0000000001)),set(arp(bytes@27=01)),1", nil},
		{"ttl raised", tcpIn, []Output{{Port: 2, Key: with(tcpIn, field.IPTTL, field.U64(65))}}, "", ErrUnsupportedRewrite},
		{"dscp", tcpIn, []Output{{Port: 2, Key: with(tcpIn, field.IPDSCP, field.U64(1))}}, field.Lookup(field.IPDSCP).Name, ErrUnsupportedRewrite},
		{"ipv6 address", tcpIn, []Output{{Port: 2, Key: with(tcpIn, field.IPv6Dst, ipValue("fd00::1"))}}, field.Lookup(field.IPv6Dst).Name, ErrUnsupportedRewrite},
		{"icmp type", with(tcpIn, field.IPProto, field.U64(1)), []Output{{Port: 2, Key: with(tcpIn, field.IPProto, field.U64(1), field.ICMPv4Type, field.U64(0))}}, "", ErrUnsupportedRewrite},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			acts, err := BuildActions(&tc.in, &Decision{Outputs: tc.outs}, nil)
			if tc.err != nil {
				require.ErrorIs(t, err, tc.err)
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, datapath.FormatActions(acts))
		})
	}
}
