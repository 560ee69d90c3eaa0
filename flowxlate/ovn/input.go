package ovn

// The types in this file are the OVN front end's view of the Southbound
// database: plain values, no OVSDB client types, so that this package stays
// pure Go and testable without a database. The ovsdb package fills them from
// its monitored cache; tests fill them by hand.

// Southbound is a snapshot of the Southbound tables a chassis needs to run the
// logical pipeline. References between rows are by row UUID, as in the
// database.
type Southbound struct {
	Datapaths       []Datapath
	Ports           []Port
	MulticastGroups []MulticastGroup
	LogicalFlows    []LogicalFlow
	DatapathGroups  []DatapathGroup
	AddressSets     []AddressSet
	PortGroups      []PortGroup
	MACBindings     []MACBinding
	FDBs            []FDB
	LoadBalancers   []LoadBalancer
	DHCPOptions     []DHCPOption
	DHCPv6Options   []DHCPOption
}

// Datapath is a Datapath_Binding row: one logical switch or router.
type Datapath struct {
	UUID        string
	TunnelKey   int
	ExternalIDs map[string]string
}

// Port is a Port_Binding row.
type Port struct {
	UUID         string
	Name         string // logical_port
	Type         string // "", "patch", "l3gateway", "localnet", "router", "chassisredirect", ...
	Datapath     string // Datapath_Binding UUID
	TunnelKey    int
	Options      map[string]string
	MAC          []string
	PortSecurity []string
	ExternalIDs  map[string]string
}

// MulticastGroup is a Multicast_Group row; Ports holds Port_Binding UUIDs.
type MulticastGroup struct {
	UUID      string
	Name      string
	Datapath  string
	TunnelKey int
	Ports     []string
}

// LogicalFlow is a Logical_Flow row. Exactly one of Datapath and
// DatapathGroup is normally set.
type LogicalFlow struct {
	UUID          string
	Datapath      string // Datapath_Binding UUID, or ""
	DatapathGroup string // Logical_DP_Group UUID, or ""
	Pipeline      string // "ingress" or "egress"
	TableID       int
	Priority      int
	Match         string
	Actions       string
	StageName     string // external_ids:stage-name, e.g. "ls_in_acl"
	Source        string // external_ids:source, where in ovn-northd the flow comes from
}

// DatapathGroup is a Logical_DP_Group row; Datapaths holds Datapath_Binding
// UUIDs.
type DatapathGroup struct {
	UUID      string
	Datapaths []string
}

// AddressSet is an Address_Set row.
type AddressSet struct {
	UUID      string
	Name      string
	Addresses []string
}

// PortGroup is a Port_Group row; Ports holds logical port names.
type PortGroup struct {
	UUID  string
	Name  string
	Ports []string
}

// MACBinding is a MAC_Binding row.
type MACBinding struct {
	UUID        string
	LogicalPort string
	IP          string
	MAC         string
	Datapath    string
}

// FDB is an FDB row.
type FDB struct {
	UUID    string
	MAC     string
	DPKey   int
	PortKey int
}

// LoadBalancer is a Load_Balancer row.
type LoadBalancer struct {
	UUID          string
	Name          string
	VIPs          map[string]string
	Protocol      string
	Datapaths     []string
	DatapathGroup string
	Options       map[string]string
}

// DHCPOption is a DHCP_Options or DHCPv6_Options row: the name, code and
// type of an option that put_dhcp_opts/put_dhcpv6_opts may set.
type DHCPOption struct {
	UUID string
	Name string
	Code int
	Type string
}

// Table names used in Change.Deleted, as in the Southbound schema.
const (
	TableDatapathBinding = "Datapath_Binding"
	TablePortBinding     = "Port_Binding"
	TableMulticastGroup  = "Multicast_Group"
	TableLogicalFlow     = "Logical_Flow"
	TableLogicalDPGroup  = "Logical_DP_Group"
	TableAddressSet      = "Address_Set"
	TablePortGroup       = "Port_Group"
	TableMACBinding      = "MAC_Binding"
	TableFDB             = "FDB"
	TableLoadBalancer    = "Load_Balancer"
	TableDHCPOptions     = "DHCP_Options"
	TableDHCPv6Options   = "DHCPv6_Options"
)

// Change is one batch of row updates, as a monitor delivers them: Updated
// holds the new value of every inserted or modified row, Deleted the UUIDs of
// removed rows by table name (TableLogicalFlow, ...).
type Change struct {
	Updated Southbound
	Deleted map[string][]string
}
