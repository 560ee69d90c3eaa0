package ovn

import (
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// world is the Southbound state the pipeline refers to besides logical
// flows: datapaths, ports, multicast groups, MAC bindings, FDB entries,
// load balancer VIPs, address sets and port groups, indexed for lookup.
type world struct {
	datapaths    map[string]*datapath // by Datapath_Binding UUID
	dpByKey      map[uint32]*datapath
	ports        map[string]*port   // by logical port name
	portsByName2 map[string][]*port // by external_ids:name
	setCache     map[setKey]*ir.Set // compiled address-set comparisons
	cmps         map[ir.Cmp]*ir.Cmp // every comparison compiled, shared
	portsByUUID  map[string]*port
	addressSets  map[string][]constant
	portGroups   map[string][]constant // port names, as string constants
	vips         []lbVIP
}

// datapath is one logical switch or router.
type datapath struct {
	uuid, nbUUID      string
	key               uint32
	name, name2       string
	friendly          string
	isSwitch          bool
	hasLocalL3Gateway bool
	// snatCTZone: external_ids:snat-ct-zone is set, which makes the SNAT
	// zone the router's common NAT zone (ovn-controller's
	// get_common_nat_zone).
	snatCTZone  bool
	snatZoneReq int // snat-ct-zone's value when it is a zone number, else 0
	portsByKey  map[uint32]*port
	mcgroups    map[uint32]*mcgroup
	mcByName    map[string]*mcgroup
	macBindings map[macBindingKey]field.Value
	fdb         map[uint64]uint32 // MAC → port key
	world       *world
}

type macBindingKey struct {
	port uint32
	ip   field.Value // IPv4-mapped for IPv4
}

type port struct {
	uuid         string
	name, name2  string
	friendly     string
	typ          string
	dp           *datapath
	key          uint32
	peer         *port // patch and l3gateway ports
	distributed  *port // chassisredirect ports
	portSecurity []lportAddrs
}

type mcgroup struct {
	name  string
	key   uint32
	ports []*port // sorted by name
}

// lbVIP is one VIP of a load balancer, as chk_lb_hairpin needs it.
type lbVIP struct {
	addr     field.Value // IPv4 in the low 32 bits, or IPv6
	ipv6     bool
	port     uint16
	addrText string
}

// ingress and egress pipeline IDs of a datapath.
func (d *datapath) pipeline(stage int) ir.PipelineID {
	return ir.PipelineID{Domain: d.key, Stage: uint8(stage)}
}

// portKey resolves a logical port or multicast group name as a flow in d
// sees it: "" and "none" are 0; a port of another datapath does not resolve.
func (d *datapath) portKey(name string) (uint32, bool) {
	if name == "" || name == "none" {
		return 0, true
	}
	if d == nil {
		return 0, false
	}
	if p := d.w().lookupPort(name); p != nil {
		if p.dp == d {
			return p.key, true
		}
		return 0, false
	}
	if g := d.mcByName[name]; g != nil {
		return g.key, true
	}
	return 0, false
}

func (d *datapath) w() *world { return d.world }

// intern returns the shared copy of c: flows repeat the same comparisons
// (eth.type == 0x800, a port's key) many times.
func (w *world) intern(c ir.Cmp) *ir.Cmp {
	if p, ok := w.cmps[c]; ok {
		return p
	}
	p := &c
	w.cmps[c] = p
	return p
}

// portName returns the name a trace shows for port key k of d.
func (d *datapath) portName(k uint32) string {
	if p := d.portsByKey[k]; p != nil {
		return p.friendly
	}
	if k == 0 {
		return ""
	}
	return "(unnamed)"
}

// shortenUUID shortens a name that ends in a UUID to its first 6 digits.
func shortenUUID(s string) string {
	const uuidLen = 36
	if len(s) >= uuidLen && isUUID(s[len(s)-uuidLen:]) {
		return s[:len(s)-(uuidLen-6)]
	}
	return s
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return false
			}
		default:
			if !isHex(s[i]) {
				return false
			}
		}
	}
	return true
}

// partialUUIDMatch reports how many hex digits of prefix match the start of
// uuid (ignoring dashes), or 0 if it is not a prefix.
func partialUUIDMatch(uuid, prefix string) int {
	u := strings.ReplaceAll(uuid, "-", "")
	p := strings.ReplaceAll(prefix, "-", "")
	if p == "" || len(p) > len(u) || !strings.HasPrefix(u, strings.ToLower(p)) {
		return 0
	}
	for i := 0; i < len(p); i++ {
		if !isHex(p[i]) {
			return 0
		}
	}
	return len(p)
}

// lookupPort finds a port by name, by its external_ids:name, or by a
// UUID prefix of at least 4 digits, as ovn-trace does.
func (w *world) lookupPort(name string) *port {
	if p := w.ports[name]; p != nil {
		return p
	}
	var match *port
	switch ps := w.portsByName2[name]; len(ps) {
	case 0:
	case 1:
		match = ps[0]
	default:
		return nil // ambiguous
	}
	if !isPartialUUID(name) {
		return match
	}
	for _, p := range w.ports {
		if partialUUIDMatch(p.uuid, name) >= 4 || isUUID(p.name) && partialUUIDMatch(p.name, name) >= 4 {
			if match != nil && match != p {
				return nil
			}
			match = p
		}
	}
	return match
}

// isPartialUUID reports whether s could abbreviate a UUID: at least 4 hex
// digits, with dashes where a UUID has them.
func isPartialUUID(s string) bool {
	if len(s) < 4 || len(s) > 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '-' && !isHex(s[i]) {
			return false
		}
	}
	return true
}

// lookupDatapath finds a datapath by name, name2, or UUID prefix.
func (w *world) lookupDatapath(name string) *datapath {
	for _, d := range w.sortedDatapaths() {
		if d.name == name || d.name2 != "" && d.name2 == name {
			return d
		}
	}
	var match *datapath
	for _, d := range w.sortedDatapaths() {
		if partialUUIDMatch(d.uuid, name) >= 4 || partialUUIDMatch(d.nbUUID, name) >= 4 {
			if match != nil {
				return nil
			}
			match = d
		}
	}
	return match
}

func (w *world) sortedDatapaths() []*datapath {
	out := make([]*datapath, 0, len(w.datapaths))
	for _, d := range w.datapaths {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// buildWorld indexes sb. It never fails: rows with dangling references are
// left out, as ovn-controller leaves them out.
func buildWorld(sb *Southbound) *world {
	w := &world{
		datapaths:    map[string]*datapath{},
		dpByKey:      map[uint32]*datapath{},
		ports:        map[string]*port{},
		portsByName2: map[string][]*port{},
		setCache:     map[setKey]*ir.Set{},
		cmps:         map[ir.Cmp]*ir.Cmp{},
		portsByUUID:  map[string]*port{},
		addressSets:  map[string][]constant{},
		portGroups:   map[string][]constant{},
	}
	for _, d := range sb.Datapaths {
		dp := &datapath{
			uuid: d.UUID, nbUUID: d.UUID, key: uint32(d.TunnelKey), world: w,
			portsByKey: map[uint32]*port{}, mcgroups: map[uint32]*mcgroup{}, mcByName: map[string]*mcgroup{},
			macBindings: map[macBindingKey]field.Value{}, fdb: map[uint64]uint32{},
		}
		ids := d.ExternalIDs
		if u := ids["logical-switch"]; u != "" {
			dp.nbUUID, dp.isSwitch = u, true
		} else if u := ids["logical-router"]; u != "" {
			dp.nbUUID = u
		}
		dp.name = ids["name"]
		if dp.name == "" {
			dp.name = dp.nbUUID
		}
		dp.name2 = ids["name2"]
		var v string
		v, dp.snatCTZone = ids["snat-ct-zone"]
		if n, err := strconv.Atoi(v); err == nil && n > 0 && n <= 65535 {
			dp.snatZoneReq = n
		}
		dp.friendly = shortenUUID(dp.name)
		if dp.name2 != "" {
			dp.friendly = shortenUUID(dp.name2)
		}
		w.datapaths[d.UUID] = dp
		w.dpByKey[dp.key] = dp
	}
	for _, pb := range sb.Ports {
		dp := w.datapaths[pb.Datapath]
		if dp == nil || w.ports[pb.Name] != nil {
			continue
		}
		p := &port{uuid: pb.UUID, name: pb.Name, typ: pb.Type, dp: dp, key: uint32(pb.TunnelKey)}
		p.name2 = pb.ExternalIDs["name"]
		p.friendly = shortenUUID(p.name)
		if p.name2 != "" {
			p.friendly = shortenUUID(p.name2)
		}
		if pb.Type == "patch" || pb.Type == "l3gateway" {
			if pb.Type == "l3gateway" {
				dp.hasLocalL3Gateway = true
			}
			if peer := w.ports[pb.Options["peer"]]; peer != nil {
				p.peer, peer.peer = peer, p
			}
		}
		for _, ps := range pb.PortSecurity {
			if a, ok := parseLportAddrs(ps); ok {
				p.portSecurity = append(p.portSecurity, a)
			}
		}
		w.ports[p.name] = p
		if p.name2 != "" {
			w.portsByName2[p.name2] = append(w.portsByName2[p.name2], p)
		}
		w.portsByUUID[p.uuid] = p
		if _, dup := dp.portsByKey[p.key]; !dup {
			dp.portsByKey[p.key] = p
		}
	}
	for _, pb := range sb.Ports {
		if pb.Type != "chassisredirect" {
			continue
		}
		if p, d := w.ports[pb.Name], w.ports[pb.Options["distributed-port"]]; p != nil && d != nil && d.dp == p.dp {
			p.distributed = d
		}
	}
	for _, g := range sb.MulticastGroups {
		dp := w.datapaths[g.Datapath]
		if dp == nil {
			continue
		}
		mg := &mcgroup{name: g.Name, key: uint32(g.TunnelKey)}
		for _, u := range g.Ports {
			if p := w.portsByUUID[u]; p != nil && p.dp == dp {
				mg.ports = append(mg.ports, p)
			}
		}
		sort.Slice(mg.ports, func(i, j int) bool { return mg.ports[i].name < mg.ports[j].name })
		if _, dup := dp.mcgroups[mg.key]; !dup {
			dp.mcgroups[mg.key] = mg
		}
		if _, dup := dp.mcByName[mg.name]; !dup {
			dp.mcByName[mg.name] = mg
		}
	}
	for _, as := range sb.AddressSets {
		w.addressSets[as.Name] = parseAddressSet(as.Addresses)
	}
	for _, pg := range sb.PortGroups {
		names := make([]constant, len(pg.Ports))
		for i, n := range pg.Ports {
			names[i] = constant{str: n}
		}
		w.portGroups[pg.Name] = names
	}
	for _, mb := range sb.MACBindings {
		p := w.ports[mb.LogicalPort]
		if p == nil || p.dp.uuid != mb.Datapath {
			continue
		}
		ip, err := netip.ParseAddr(mb.IP)
		if err != nil || len(mb.MAC) != 17 || !isMAC(mb.MAC) {
			continue
		}
		b := ip.As16()
		if ip.Is4() {
			b = netip.AddrFrom16(netip.AddrFrom4(ip.As4()).As16()).As16()
		}
		p.dp.macBindings[macBindingKey{port: p.key, ip: field.FromBytes(b[:])}] = parseMAC(mb.MAC)
	}
	for _, f := range sb.FDBs {
		dp := w.dpByKey[uint32(f.DPKey)]
		if dp == nil || len(f.MAC) != 17 || !isMAC(f.MAC) {
			continue
		}
		dp.fdb[parseMAC(f.MAC).Lo] = uint32(f.PortKey)
	}
	for _, lb := range sb.LoadBalancers {
		for vip := range lb.VIPs {
			if v, ok := parseVIP(vip); ok {
				w.vips = append(w.vips, v)
			}
		}
	}
	sort.Slice(w.vips, func(i, j int) bool { return w.vips[i].addrText < w.vips[j].addrText })
	return w
}

// parseAddressSet converts address set members into constants the way the
// lexer reads them, skipping members that are not addresses.
func parseAddressSet(addrs []string) []constant {
	out := make([]constant, 0, len(addrs))
	for _, a := range addrs {
		tok, _, end := lexToken(a, 0)
		if tok.typ != tInteger && tok.typ != tMaskedInteger || strings.TrimSpace(a[end:]) != "" {
			continue
		}
		out = append(out, constant{value: tok.value, mask: tok.mask, masked: tok.typ == tMaskedInteger, format: tok.format})
	}
	return out
}

// parseVIP parses a Load_Balancer.vips key: "IP", "IP:PORT" or "[IPv6]:PORT".
func parseVIP(s string) (lbVIP, bool) {
	host, portStr := s, ""
	if strings.HasPrefix(s, "[") {
		i := strings.Index(s, "]")
		if i < 0 {
			return lbVIP{}, false
		}
		host = s[1:i]
		if rest := s[i+1:]; strings.HasPrefix(rest, ":") {
			portStr = rest[1:]
		}
	} else if strings.Count(s, ":") == 1 {
		i := strings.IndexByte(s, ':')
		host, portStr = s[:i], s[i+1:]
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return lbVIP{}, false
	}
	v := lbVIP{addrText: host}
	if ip.Is4() {
		b := ip.As4()
		v.addr = field.FromBytes(b[:])
	} else {
		b := ip.As16()
		v.addr, v.ipv6 = field.FromBytes(b[:]), true
	}
	if portStr != "" {
		n, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			return lbVIP{}, false
		}
		v.port = uint16(n)
	}
	return v, true
}
