package ovn

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// The conntrack actions compile as OVN 23.03's lib/actions.c encodes them:
// the zone register each uses in a switch and in a router, commit or not,
// the NAT, load-balancing hash fields and the ct_mark (ct_label for ct_lb)
// bits a load balancer's commit sets.
func TestConntrackEncodings(t *testing.T) {
	tr := loadStateful(t)
	sw, rt := tr.w.datapaths[ls1UUID], tr.w.datapaths[lr0UUID]
	czone := *rt
	czone.snatCTZone = true       // external_ids:snat-ct-zone set
	const none = ir.NATKind(0xff) // no NAT at all
	tests := []struct {
		name    string
		dp      *datapath
		actions string
		zone    int // register holding the zone
		commit  bool
		recirc  bool
		nat     ir.NATKind
		hash    string
		exec    []field.Subfield // bits set to 1 at commit
	}{
		{"ct_next in a switch", sw, "ct_next;", regLogCTZone, false, true, none, "", nil},
		{"ct_next in a router", rt, "ct_next;", regLogDNATZone, false, true, none, "", nil},
		{"ct_commit { } in a switch", sw, "ct_commit { ct_mark.blocked = 1; };", regLogCTZone, true, false, none, "", []field.Subfield{{Field: field.CTMark, Ofs: 0, Bits: 1}}},
		{"ct_commit { } in a router", rt, "ct_commit { };", regLogDNATZone, true, false, none, "", nil},
		{"ct_commit(...) in a router keeps the port zone", rt, "ct_commit(ct_mark=1);", regLogCTZone, true, false, none, "", nil},
		{"ct_dnat", rt, "ct_dnat;", regLogDNATZone, false, true, ir.NATAuto, "", nil},
		{"ct_dnat(ip)", rt, "ct_dnat(10.0.0.1);", regLogDNATZone, true, true, ir.NATDst, "", nil},
		{"ct_snat uses the SNAT zone", rt, "ct_snat;", regLogSNATZone, false, true, ir.NATAuto, "", nil},
		{"ct_snat(ip) uses the SNAT zone", rt, "ct_snat(10.0.0.1);", regLogSNATZone, true, true, ir.NATSrc, "", nil},
		{"ct_dnat_in_czone: the DNAT zone", rt, "ct_dnat_in_czone;", regLogDNATZone, false, true, ir.NATAuto, "", nil},
		{"ct_snat_in_czone: the DNAT zone", rt, "ct_snat_in_czone(10.0.0.1);", regLogDNATZone, true, true, ir.NATSrc, "", nil},
		{"ct_snat_in_czone with snat-ct-zone: the SNAT zone", &czone, "ct_snat_in_czone(10.0.0.1);", regLogSNATZone, true, true, ir.NATSrc, "", nil},
		{"bare ct_lb_mark is ct(nat) without commit", sw, "ct_lb_mark;", regLogCTZone, false, true, ir.NATAuto, "", nil},
		{"ct_lb_mark with backends", sw, `ct_lb_mark(backends=10.0.0.2:80,10.0.0.3:80; hash_fields="ip_dst,ip_src,tcp_dst,tcp_src");`,
			regLogCTZone, true, true, ir.NATDst, "ip_dst,ip_src,tcp_dst,tcp_src", []field.Subfield{{Field: field.CTMark, Ofs: 1, Bits: 1}}},
		{"ct_lb_mark skip_snat", rt, "ct_lb_mark(backends=10.0.0.2:80; skip_snat);", regLogDNATZone, true, true, ir.NATDst, "",
			[]field.Subfield{{Field: field.CTMark, Ofs: 1, Bits: 1}, {Field: field.CTMark, Ofs: 2, Bits: 1}}},
		{"ct_lb force_snat marks ct_label", rt, "ct_lb(backends=10.0.0.2:80; force_snat);", regLogDNATZone, true, true, ir.NATDst, "",
			[]field.Subfield{{Field: field.CTLabel, Ofs: 1, Bits: 1}, {Field: field.CTLabel, Ofs: 3, Bits: 1}}},
		{"ct_commit_nat in a switch", sw, "ct_commit_nat;", regLogCTZone, true, true, ir.NATAuto, "", nil},
		{"ct_commit_nat(snat) in a switch", sw, "ct_commit_nat(snat);", regLogCTZone, true, true, ir.NATAuto, "", nil},
		{"ct_commit_nat(dnat) in a router", rt, "ct_commit_nat(dnat);", regLogDNATZone, true, true, ir.NATAuto, "", nil},
		{"ct_commit_nat(snat) in a router", rt, "ct_commit_nat(snat);", regLogSNATZone, true, true, ir.NATAuto, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			acts, _, err := parseActions(tt.actions, tr.st, pipelineIngress, 5, tt.dp, tr.otabs)
			require.NoError(t, err)
			require.Len(t, acts, 1)
			ct, ok := acts[0].(*ir.CT)
			require.True(t, ok, "%T", acts[0])
			require.Equal(t, zoneReg(tt.zone), ct.Zone)
			require.Equal(t, tt.commit, ct.Commit)
			require.Equal(t, tt.recirc, ct.Recirc)
			if tt.recirc {
				require.Equal(t, 6, ct.Table)
			}
			if tt.nat == none {
				require.Nil(t, ct.NAT)
			} else {
				require.NotNil(t, ct.NAT)
				require.Equal(t, tt.nat, ct.NAT.Kind)
				require.Equal(t, tt.hash, ct.NAT.HashFields)
			}
			if tt.exec == nil {
				return
			}
			var got []field.Subfield
			for _, a := range ct.Exec {
				if sf, ok := a.(*ir.SetField); ok && sf.Value == field.U64(1) {
					got = append(got, sf.Dst)
				}
			}
			require.Equal(t, tt.exec, got)
		})
	}
}

func TestConntrackEncodingErrors(t *testing.T) {
	tr := loadStateful(t)
	_, _, err := parseActions("ct_commit_nat(both);", tr.st, pipelineIngress, 5, tr.w.datapaths[lr0UUID], tr.otabs)
	require.ErrorContains(t, err, `accepts only "dnat" or "snat"`)
}
