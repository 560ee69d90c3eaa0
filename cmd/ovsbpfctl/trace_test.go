package main

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
)

func TestParseCTFlags(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
		err  string
	}{
		{"", field.CSTrk, ""},
		{"new", field.CSTrk | field.CSNew, ""},
		{"est,rpl", field.CSTrk | field.CSEst | field.CSRpl, ""},
		{"est|dnat", field.CSTrk | field.CSEst | field.CSDstNAT, ""},
		{"new+trk", field.CSTrk | field.CSNew, ""},
		{"est,bogus", 0, `--ct "est,bogus": bogus: unknown`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseCTFlags(tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestParseLBDst(t *testing.T) {
	tests := []struct {
		in   string
		want *ovn.LBDst
		err  string
	}{
		{"10.0.0.5", &ovn.LBDst{Addr: netip.MustParseAddr("10.0.0.5")}, ""},
		{"10.0.0.5:8080", &ovn.LBDst{Addr: netip.MustParseAddr("10.0.0.5"), Port: 8080}, ""},
		{"[fd00::5]:443", &ovn.LBDst{Addr: netip.MustParseAddr("fd00::5"), Port: 443}, ""},
		{"fd00::5", &ovn.LBDst{Addr: netip.MustParseAddr("fd00::5")}, ""},
		{"backend-1:80", nil, `--lb-dst "backend-1:80": bad address`},
		{"10.0.0.5:99999", nil, `--lb-dst "10.0.0.5:99999"`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseLBDst(tt.in)
			if tt.err != "" {
				require.ErrorContains(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}
