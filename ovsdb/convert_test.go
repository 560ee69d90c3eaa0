package ovsdb

import (
	"cmp"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ovn-org/libovsdb/model"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/ovsdb/sbmodel"
)

func ptr[T any](v T) *T { return &v }

// sorted returns the arguments in order, as the reader orders sets.
func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

// sampleRows is one row of every table the reader converts, and of the
// monitored tables it does not deliver (Chassis, Encap), with references by
// named UUID.
func sampleRows() []model.Model {
	return []model.Model{
		&sbmodel.DatapathBinding{UUID: "dp1", TunnelKey: 1, ExternalIDs: map[string]string{"name": "sw1"}},
		&sbmodel.DatapathBinding{UUID: "dp2", TunnelKey: 2, ExternalIDs: map[string]string{"name": "lr0"}},
		&sbmodel.LogicalDPGroup{UUID: "grp", Datapaths: []string{"dp1", "dp2"}},
		&sbmodel.LogicalFlow{UUID: "lf1", LogicalDatapath: ptr("dp1"), Pipeline: "ingress", TableID: 0, Priority: 50,
			Match: `inport == "p1"`, Actions: "next;",
			ExternalIDs: map[string]string{"stage-name": "ls_in_port_sec_l2", "source": "northd.c:5000"}},
		&sbmodel.LogicalFlow{UUID: "lf2", LogicalDpGroup: ptr("grp"), Pipeline: "egress", TableID: 9, Priority: 0,
			Match: "1", Actions: "output;"},
		&sbmodel.PortBinding{UUID: "pb1", LogicalPort: "p1", Datapath: "dp1", TunnelKey: 1,
			MAC: []string{"0a:00:00:00:00:01 10.0.0.1"}, PortSecurity: []string{"0a:00:00:00:00:01 10.0.0.1"},
			Options: map[string]string{"requested-chassis": "ch1"}, ExternalIDs: map[string]string{"name": "vm1"}},
		&sbmodel.PortBinding{UUID: "pb2", LogicalPort: "sw1-lr0", Type: "patch", Datapath: "dp1", TunnelKey: 2,
			MAC: []string{"router"}, Options: map[string]string{"peer": "lrp1"}},
		&sbmodel.MulticastGroup{UUID: "mg", Name: "_MC_flood", Datapath: "dp1", TunnelKey: 32768, Ports: []string{"pb1", "pb2"}},
		&sbmodel.MACBinding{UUID: "mb", LogicalPort: "lrp1", IP: "10.0.0.9", MAC: "0a:00:00:00:00:09", Datapath: "dp2"},
		&sbmodel.AddressSet{UUID: "as", Name: "1_pg1_ip4", Addresses: []string{"10.0.0.2", "10.0.0.1"}},
		&sbmodel.PortGroup{UUID: "pg", Name: "1_pg1", Ports: []string{"p1", "sw1-lr0"}},
		&sbmodel.LoadBalancer{UUID: "lb", Name: "lb1", Vips: map[string]string{"10.0.0.100:80": "10.0.0.1:8080"},
			Protocol: ptr("tcp"), Datapaths: []string{"dp1"}, DatapathGroup: ptr("grp"),
			Options: map[string]string{"hairpin_snat_ip": "169.254.0.5"}},
		&sbmodel.FDB{UUID: "fdb", MAC: "0a:00:00:00:00:05", DpKey: 1, PortKey: 1},
		&sbmodel.DHCPOptions{UUID: "dhcp", Name: "router", Code: 3, Type: "ipv4"},
		&sbmodel.DHCPv6Options{UUID: "dhcp6", Name: "server_id", Code: 2, Type: "mac"},
		&sbmodel.Encap{UUID: "encap", Type: "geneve", IP: "192.0.2.1", ChassisName: "ch1"},
		&sbmodel.Chassis{UUID: "ch", Name: "ch1", Encaps: []string{"encap"}},
	}
}

// ReadSouthbound converts every table, UUID references included.
func TestReadSouthboundConverts(t *testing.T) {
	s := startMemServer(t)
	id := s.insert(t, sampleRows()...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sb, err := ReadSouthbound(ctx, s.remote(), testLogger(t))
	require.NoError(t, err)

	tests := []struct {
		table string
		got   any
		want  any
	}{
		{ovn.TableDatapathBinding, sb.Datapaths, byUUID([]ovn.Datapath{
			{UUID: id["dp1"], TunnelKey: 1, ExternalIDs: map[string]string{"name": "sw1"}},
			{UUID: id["dp2"], TunnelKey: 2, ExternalIDs: map[string]string{"name": "lr0"}},
		}, func(d ovn.Datapath) string { return d.UUID })},
		{ovn.TableLogicalDPGroup, sb.DatapathGroups, []ovn.DatapathGroup{
			{UUID: id["grp"], Datapaths: sorted(id["dp1"], id["dp2"])},
		}},
		{ovn.TableLogicalFlow, sb.LogicalFlows, byUUID([]ovn.LogicalFlow{
			{UUID: id["lf1"], Datapath: id["dp1"], Pipeline: "ingress", TableID: 0, Priority: 50,
				Match: `inport == "p1"`, Actions: "next;", StageName: "ls_in_port_sec_l2", Source: "northd.c:5000"},
			{UUID: id["lf2"], DatapathGroup: id["grp"], Pipeline: "egress", TableID: 9, Priority: 0,
				Match: "1", Actions: "output;"},
		}, func(f ovn.LogicalFlow) string { return f.UUID })},
		{ovn.TablePortBinding, sb.Ports, byUUID([]ovn.Port{
			{UUID: id["pb1"], Name: "p1", Datapath: id["dp1"], TunnelKey: 1,
				MAC: []string{"0a:00:00:00:00:01 10.0.0.1"}, PortSecurity: []string{"0a:00:00:00:00:01 10.0.0.1"},
				Options: map[string]string{"requested-chassis": "ch1"}, ExternalIDs: map[string]string{"name": "vm1"}},
			{UUID: id["pb2"], Name: "sw1-lr0", Type: "patch", Datapath: id["dp1"], TunnelKey: 2,
				MAC: []string{"router"}, Options: map[string]string{"peer": "lrp1"}},
		}, func(p ovn.Port) string { return p.UUID })},
		{ovn.TableMulticastGroup, sb.MulticastGroups, []ovn.MulticastGroup{
			{UUID: id["mg"], Name: "_MC_flood", Datapath: id["dp1"], TunnelKey: 32768, Ports: sorted(id["pb1"], id["pb2"])},
		}},
		{ovn.TableMACBinding, sb.MACBindings, []ovn.MACBinding{
			{UUID: id["mb"], LogicalPort: "lrp1", IP: "10.0.0.9", MAC: "0a:00:00:00:00:09", Datapath: id["dp2"]},
		}},
		{ovn.TableAddressSet, sb.AddressSets, []ovn.AddressSet{
			{UUID: id["as"], Name: "1_pg1_ip4", Addresses: []string{"10.0.0.1", "10.0.0.2"}},
		}},
		{ovn.TablePortGroup, sb.PortGroups, []ovn.PortGroup{
			{UUID: id["pg"], Name: "1_pg1", Ports: []string{"p1", "sw1-lr0"}},
		}},
		{ovn.TableLoadBalancer, sb.LoadBalancers, []ovn.LoadBalancer{
			{UUID: id["lb"], Name: "lb1", VIPs: map[string]string{"10.0.0.100:80": "10.0.0.1:8080"}, Protocol: "tcp",
				Datapaths: []string{id["dp1"]}, DatapathGroup: id["grp"],
				Options: map[string]string{"hairpin_snat_ip": "169.254.0.5"}},
		}},
		{ovn.TableFDB, sb.FDBs, []ovn.FDB{{UUID: id["fdb"], MAC: "0a:00:00:00:00:05", DPKey: 1, PortKey: 1}}},
		{ovn.TableDHCPOptions, sb.DHCPOptions, []ovn.DHCPOption{{UUID: id["dhcp"], Name: "router", Code: 3, Type: "ipv4"}}},
		{ovn.TableDHCPv6Options, sb.DHCPv6Options, []ovn.DHCPOption{{UUID: id["dhcp6"], Name: "server_id", Code: 2, Type: "mac"}}},
	}
	for _, tt := range tests {
		t.Run(tt.table, func(t *testing.T) {
			require.Equal(t, tt.want, tt.got)
		})
	}
}

// byUUID sorts rows as the reader orders them.
func byUUID[T any](rows []T, uuid func(T) string) []T {
	slices.SortFunc(rows, func(a, b T) int { return cmp.Compare(uuid(a), uuid(b)) })
	return rows
}

// What the reader delivers owns its memory: changing it does not change the
// client's cache, which a monitor keeps using.
func TestConversionCopies(t *testing.T) {
	r := &sbmodel.PortBinding{UUID: "u", MAC: []string{"b", "a"}, Options: map[string]string{"k": "v"}}
	var sb ovn.Southbound
	for _, tbl := range southboundTables() {
		if tbl.name == ovn.TablePortBinding {
			tbl.add(&sb, r)
		}
	}
	require.Len(t, sb.Ports, 1)
	require.Equal(t, []string{"a", "b"}, sb.Ports[0].MAC)
	sb.Ports[0].MAC[0] = "x"
	sb.Ports[0].Options["k"] = "x"
	require.Equal(t, []string{"b", "a"}, r.MAC)
	require.Equal(t, map[string]string{"k": "v"}, r.Options)
}
