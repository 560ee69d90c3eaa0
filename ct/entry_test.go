package ct

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Entry formatting against lines in the shape OVS's ct_dpif_format_entry
// prints (lib/ct-dpif.c): optional fields only when set, labels in hex
// without leading zeros, TCP states coalesced.
func TestEntryString(t *testing.T) {
	a, b := netip.MustParseAddr("192.168.1.10"), netip.MustParseAddr("192.168.1.20")
	tests := []struct {
		name string
		e    Entry
		want string
	}{
		{"zone 0, no mark", Entry{Proto: 17, Orig: Tuple{Src: a, Dst: b, SrcPort: 5000, DstPort: 53}, Reply: Tuple{Src: b, Dst: a, SrcPort: 53, DstPort: 5000}},
			"udp,orig=(src=192.168.1.10,dst=192.168.1.20,sport=5000,dport=53),reply=(src=192.168.1.20,dst=192.168.1.10,sport=53,dport=5000)"},
		{"small label", Entry{Proto: 6, Zone: 3, Mark: 2, Label: [16]byte{15: 0x0a}, TCP: [2]TCPState{TCPSSynSent, TCPSClosed},
			Orig: Tuple{Src: a, Dst: b, SrcPort: 1, DstPort: 2}, Reply: Tuple{Src: b, Dst: a, SrcPort: 2, DstPort: 1}},
			"tcp,orig=(src=192.168.1.10,dst=192.168.1.20,sport=1,dport=2),reply=(src=192.168.1.20,dst=192.168.1.10,sport=2,dport=1),zone=3,mark=2,labels=0xa,protoinfo=(state=SYN_SENT)"},
		{"syn_recv shows as established", Entry{Proto: 6, TCP: [2]TCPState{TCPSSynRecv, TCPSSynSent},
			Orig: Tuple{Src: a, Dst: b, SrcPort: 1, DstPort: 2}, Reply: Tuple{Src: b, Dst: a, SrcPort: 2, DstPort: 1}},
			"tcp,orig=(src=192.168.1.10,dst=192.168.1.20,sport=1,dport=2),reply=(src=192.168.1.20,dst=192.168.1.10,sport=2,dport=1),protoinfo=(state=ESTABLISHED)"},
		{"other protocol by number", Entry{Proto: 47, Orig: Tuple{Src: a, Dst: b}, Reply: Tuple{Src: b, Dst: a}},
			"47,orig=(src=192.168.1.10,dst=192.168.1.20,sport=0,dport=0),reply=(src=192.168.1.20,dst=192.168.1.10,sport=0,dport=0)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { require.Equal(t, tc.want, tc.e.String()) })
	}
	e := tests[0].e
	e.Zone, e.Timeout = 7, 42500*time.Millisecond
	require.Equal(t, "udp,orig=(src=192.168.1.10,dst=192.168.1.20,sport=5000,dport=53),reply=(src=192.168.1.20,dst=192.168.1.10,sport=53,dport=5000),zone=7,timeout=42", e.StringWithTimeout())
}
