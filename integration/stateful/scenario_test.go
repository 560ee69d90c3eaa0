package stateful

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/netns"
	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// Chassis is one OVN chassis implementation under test, already started
// on its own central's Southbound (ovntest.Env.SBRemote), with br-int in
// place.
type Chassis interface {
	// SystemID is the chassis' name in the Southbound
	// (Open_vSwitch external_ids:system-id): the gateway router and the
	// distributed gateway port are pinned to it.
	SystemID() string
	// AddVM creates a VM: a network namespace whose eth0 has mac and
	// cidr (ADDR/LEN) and a default route through gw, bound to the
	// logical port lport on br-int (external_ids:iface-id). name is the
	// chassis-side interface (at most 15 bytes).
	AddVM(t testing.TB, lport, name, mac, cidr, gw string) *VM
	// DumpConntrack returns the chassis' conntrack table in the format of
	// `ovs-appctl dpctl/dump-conntrack`.
	DumpConntrack(t testing.TB) string
	// CTZones returns the zone of each conntrack zone name (a logical
	// port, or <logical router uuid>_dnat / _snat), as ovn-controller
	// records them in br-int's external_ids:ct-zone-NAME.
	CTZones(t testing.TB) map[string]int
}

// VM is one VM of the scenario.
type VM struct {
	Name string
	NS   *netns.NS
	IP   net.IP
}

// Result is what one run of the scenario saw.
type Result struct {
	// Verdicts maps each case to what happened, in a form that is the
	// same on every correct implementation (no ephemeral ports, no
	// randomly chosen backend).
	Verdicts map[string]string
	// Conntrack is the chassis' conntrack table after the cases,
	// normalised: zones by name, ephemeral ports and ICMP ids as *, equal
	// lines counted.
	Conntrack string
}

// Bounds on the scenario's traffic.
const (
	dialTimeout  = 2500 * time.Millisecond // a blocked SYN stays blocked this long (the SYN is sent thrice)
	connDeadline = 5 * time.Second         // one whole TCP exchange
	udpWait      = time.Second             // for a UDP reply, per try
	readyTimeout = 60 * time.Second        // the chassis forwarding the topology
	lbConns      = 30                      // connections to the switch VIP
	routerConns  = 20                      // connections to the router VIP
	rounds       = 3                       // request/reply rounds per TCP connection
)

// Ports the VMs serve on; any other port in the conntrack table is an
// ephemeral one.
const (
	portBackend = 8080 // the backends' service, the only TCP port the ACLs open into them
	portClosed  = 9999 // a port the backends listen on that the ACLs keep closed
	portClient  = 5000 // clients listen here; nothing may reach it unsolicited but DNAT from outside
	portUDP     = 5353 // UDP request/reply
	portOutside = 9000 // the external host's service
	portVIP     = 80   // load balancer VIPs
	portNobody  = 7777 // nobody listens: TCP answers RST, UDP ICMP port unreachable
)

// vmSpec is one VM: logical switch, port, MAC, address and gateway.
type vmSpec struct {
	name, ls, mac, cidr, gw string
}

var vms = []vmSpec{
	{"vm1", "sw0", "0a:00:00:00:00:11", "10.0.0.11/24", "10.0.0.1"},
	{"vm2", "sw0", "0a:00:00:00:00:12", "10.0.0.12/24", "10.0.0.1"},
	{"b1", "sw0", "0a:00:00:00:00:21", "10.0.0.21/24", "10.0.0.1"},
	{"b2", "sw0", "0a:00:00:00:00:22", "10.0.0.22/24", "10.0.0.1"},
	{"b3", "sw0", "0a:00:00:00:00:23", "10.0.0.23/24", "10.0.0.1"},
	{"vm3", "sw1", "0a:00:00:00:00:13", "10.0.1.13/24", "10.0.1.1"},
	{"outside", "ext", "0a:00:00:00:00:50", "172.16.0.50/24", "172.16.0.1"},
}

// Addresses of the services the topology defines. The VIPs are outside
// every subnet, so VMs send to them through their gateway: nothing
// answers ARP for a switch load balancer's VIP.
const (
	switchVIP  = "10.0.100.100"    // sw0's load balancer: b1, b2, b3
	hairpinVIP = "10.0.100.101"    // sw0's load balancer with b1 alone: b1 through it reaches itself
	routerVIP  = "192.168.100.100" // lr0's load balancer: b2, b3, reached from outside
	snatIP     = "172.16.0.100"    // gw's SNAT address for sw0
	floatingIP = "172.16.0.110"    // gw's DNAT (dnat_and_snat) to vm1
)

// nbCommands returns the Northbound commands that build the topology,
// with the gateway router and lr0's gateway port on chassis.
//
//	vm1 vm2 b1 b2 b3          vm3
//	       sw0 ---- lr0 ---- sw1
//	                 | lr0-join (gateway port)
//	                join
//	                 |
//	                gw (gateway router: SNAT, DNAT)
//	                 |
//	                ext ---- outside
func nbCommands(chassis string) [][]string {
	cmds := [][]string{
		{"ls-add", "sw0"}, {"ls-add", "sw1"}, {"ls-add", "join"}, {"ls-add", "ext"},
		{"lr-add", "lr0"},
		{"lr-add", "gw", "--", "set", "Logical_Router", "gw", "options:chassis=" + chassis},
	}
	link := func(lr, ls, mac, cidr string) {
		lrp, lsp := lr+"-"+ls, ls+"-"+lr
		cmds = append(cmds,
			[]string{"lrp-add", lr, lrp, mac, cidr},
			[]string{"lsp-add", ls, lsp, "--", "lsp-set-type", lsp, "router", "--", "lsp-set-addresses", lsp, "router",
				"--", "lsp-set-options", lsp, "router-port=" + lrp})
	}
	link("lr0", "sw0", "00:00:00:00:ff:01", "10.0.0.1/24")
	link("lr0", "sw1", "00:00:00:00:ff:02", "10.0.1.1/24")
	link("lr0", "join", "00:00:00:00:ff:03", "100.64.0.1/24")
	link("gw", "join", "00:00:00:00:ff:04", "100.64.0.2/24")
	link("gw", "ext", "00:00:00:00:ff:05", "172.16.0.1/24")
	for _, v := range vms {
		ip, _, _ := strings.Cut(v.cidr, "/")
		cmds = append(cmds, []string{"lsp-add", v.ls, v.name, "--", "lsp-set-addresses", v.name, v.mac + " " + ip})
	}
	cmds = append(cmds,
		// lr0's port to join is a distributed gateway port: OVN 23.03
		// load-balances on a distributed router only there.
		[]string{"lrp-set-gateway-chassis", "lr0-join", chassis, "10"},
		[]string{"lr-route-add", "lr0", "0.0.0.0/0", "100.64.0.2"},
		[]string{"lr-route-add", "gw", "10.0.0.0/16", "100.64.0.1"},
		[]string{"lr-route-add", "gw", routerVIP + "/32", "100.64.0.1"},
		[]string{"lr-nat-add", "gw", "snat", snatIP, "10.0.0.0/24"},
		[]string{"lr-nat-add", "gw", "dnat_and_snat", floatingIP, "10.0.0.11"},

		[]string{"pg-add", "pg_clients", "vm1", "vm2"},
		[]string{"pg-add", "pg_servers", "b1", "b2", "b3"},
		[]string{"create", "Address_Set", "name=as_clients", `addresses=["10.0.0.11", "10.0.0.12", "10.0.1.13", "172.16.0.50"]`},
		// Clients may start anything; servers only connections to the
		// VIPs (hairpin). Into servers: TCP to the service port and
		// ICMP, from the clients, or from a VIP (hairpin, source
		// rewritten to the VIP). Into clients: only what comes from
		// outside (the floating IP). Everything else is dropped, so
		// replies get in only through conntrack.
		[]string{"acl-add", "pg_clients", "from-lport", "1002", "inport == @pg_clients && ip4", "allow-related"},
		// A connection's first packet meets the ACLs with the VIP as
		// destination, the later ones after the load balancer's DNAT
		// (ct_lb_mark in ls_in_pre_stateful rewrites them first): the
		// rule for hairpin must match both, or the backend's ACK
		// already hits the drop rule and marks the connection blocked.
		[]string{"acl-add", "pg_servers", "from-lport", "1002",
			fmt.Sprintf("inport == @pg_servers && (ip4.dst == {%s, %s} || tcp.dst == %d)", switchVIP, hairpinVIP, portBackend), "allow-related"},
		[]string{"acl-add", "pg_servers", "to-lport", "1002",
			fmt.Sprintf("outport == @pg_servers && ip4.src == $as_clients && (tcp.dst == %d || icmp4)", portBackend), "allow-related"},
		[]string{"acl-add", "pg_servers", "to-lport", "1002",
			fmt.Sprintf("outport == @pg_servers && ip4.src == {%s, %s} && tcp.dst == %d", switchVIP, hairpinVIP, portBackend), "allow-related"},

		[]string{"acl-add", "pg_clients", "to-lport", "1002", "outport == @pg_clients && ip4.src == 172.16.0.0/24", "allow-related"},
		[]string{"acl-add", "pg_servers", "from-lport", "1001", "inport == @pg_servers && ip4", "drop"},
		[]string{"acl-add", "pg_clients", "to-lport", "1001", "outport == @pg_clients && ip4", "drop"},
		[]string{"acl-add", "pg_servers", "to-lport", "1001", "outport == @pg_servers && ip4", "drop"},

		[]string{"lb-add", "lb_vip", fmt.Sprintf("%s:%d", switchVIP, portVIP), backends("10.0.0.21", "10.0.0.22", "10.0.0.23"), "tcp"},
		[]string{"ls-lb-add", "sw0", "lb_vip"},
		[]string{"lb-add", "lb_hairpin", fmt.Sprintf("%s:%d", hairpinVIP, portVIP), backends("10.0.0.21"), "tcp"},
		[]string{"ls-lb-add", "sw0", "lb_hairpin"},
		[]string{"lb-add", "lb_router", fmt.Sprintf("%s:%d", routerVIP, portVIP), backends("10.0.0.22", "10.0.0.23"), "tcp"},
		[]string{"lr-lb-add", "lr0", "lb_router"},
	)
	return cmds
}

func backends(ips ...string) string {
	for i, ip := range ips {
		ips[i] = fmt.Sprintf("%s:%d", ip, portBackend)
	}
	return strings.Join(ips, ",")
}

// RunScenario builds the topology on env and ch, waits until ch forwards
// it, runs every case with real traffic and returns the verdicts and the
// normalised conntrack table. It fails t only when the scenario cannot
// run (a command fails, the chassis never forwards); a case with an
// unexpected verdict is the caller's to judge.
func RunScenario(t *testing.T, ch Chassis, env *ovntest.Env) Result {
	for _, c := range nbCommands(ch.SystemID()) {
		env.NBCtl(c...)
	}
	env.Sync()
	vm := map[string]*VM{}
	for _, v := range vms {
		vm[v.name] = ch.AddVM(t, v.name, v.name, v.mac, v.cidr, v.gw)
	}
	for _, b := range []string{"b1", "b2", "b3"} {
		serveTCP(t, vm[b], portBackend)
		serveTCP(t, vm[b], portClosed)
	}
	for _, c := range []string{"vm1", "vm2"} {
		serveTCP(t, vm[c], portClient)
		serveUDP(t, vm[c], portUDP)
	}
	serveUDP(t, vm["vm3"], portUDP)
	serveTCP(t, vm["outside"], portOutside)

	// Forwarding is up once a path through each part answers: the
	// switch, the distributed router, the gateway router's SNAT.
	start := time.Now()
	for _, p := range []struct{ from, to string }{
		{"vm1", "10.0.0.21"}, {"vm1", "10.0.1.13"}, {"outside", "172.16.0.1"}, {"vm2", "172.16.0.50"},
	} {
		require.Eventually(t, func() bool { return ping(vm[p.from], p.to, 1) == "ok 1/1" }, readyTimeout, 100*time.Millisecond,
			"%s reaches %s through the chassis", p.from, p.to)
	}
	t.Logf("topology forwards after %v", time.Since(start).Round(time.Millisecond))

	verdicts := map[string]string{}
	record := func(name, verdict string) {
		verdicts[name] = verdict
		t.Logf("case %-45s %s", name, verdict)
	}
	addr := func(ip string, port int) string { return net.JoinHostPort(ip, strconv.Itoa(port)) }

	// Allowed traffic, replies let in by conntrack.
	record("tcp vm1->b1:8080", tcpConn(vm["vm1"], addr("10.0.0.21", portBackend)))
	record("tcp vm3->b2:8080 (routed)", tcpConn(vm["vm3"], addr("10.0.0.22", portBackend)))
	record("icmp vm1->b1", ping(vm["vm1"], "10.0.0.21", 2))
	record("udp vm1->vm3:5353 reply", udpExchange(vm["vm1"], addr("10.0.1.13", portUDP)))
	// A RST answering a SYN is a reply; an ICMP error quoting a UDP
	// datagram is related: both get in.
	record("tcp vm1->vm3:7777 (closed port)", tcpConn(vm["vm1"], addr("10.0.1.13", portNobody)))
	record("udp vm1->vm3:7777 (closed port)", udpExchange(vm["vm1"], addr("10.0.1.13", portNobody)))
	// Unsolicited traffic stays out.
	record("tcp vm1->b1:9999 (port closed by ACL)", tcpConn(vm["vm1"], addr("10.0.0.21", portClosed)))
	record("tcp b1->vm1:5000 (unsolicited)", tcpConn(vm["b1"], addr("10.0.0.11", portClient)))
	record("icmp b1->vm1 (unsolicited)", ping(vm["b1"], "10.0.0.11", 2))
	record("tcp vm3->vm1:5000 (unsolicited)", tcpConn(vm["vm3"], addr("10.0.0.11", portClient)))
	record("udp vm3->vm1:5353 (unsolicited)", udpExchange(vm["vm3"], addr("10.0.0.11", portUDP)))
	// Load balancing: each connection on one backend, all backends used.
	record(fmt.Sprintf("lb vm1->%s:80 x%d", switchVIP, lbConns), spread(vm["vm1"], addr(switchVIP, portVIP), lbConns))
	record(fmt.Sprintf("router lb outside->%s:80 x%d", routerVIP, routerConns), spread(vm["outside"], addr(routerVIP, portVIP), routerConns))
	record("hairpin b1->"+hairpinVIP+":80", tcpConn(vm["b1"], addr(hairpinVIP, portVIP)))
	// The gateway router.
	record("snat vm2->outside:9000", tcpConn(vm["vm2"], addr("172.16.0.50", portOutside)))
	record("dnat outside->"+floatingIP+":5000", tcpConn(vm["outside"], addr(floatingIP, portClient)))
	record("icmp outside->"+floatingIP, ping(vm["outside"], floatingIP, 2))

	return Result{Verdicts: verdicts, Conntrack: NormaliseConntrack(ch.DumpConntrack(t), zoneNames(t, ch, env))}
}

// StartFunc starts one chassis implementation on env's Southbound; the
// chassis lives until t ends.
type StartFunc func(t *testing.T, env *ovntest.Env) Chassis

// Differential runs the scenario on every implementation at once, each on
// its own OVN central fed the same Northbound commands, and requires that
// each gets the expected verdicts (so that they all agree). Each one's
// normalised conntrack table goes to the log, and where two differ in
// the connections they hold (counts and TCP states aside, which timing
// moves) the difference is logged too: it is a reference to read, not a
// verdict.
func Differential(t *testing.T, impls map[string]StartFunc) {
	results := map[string]Result{}
	var mu sync.Mutex
	t.Run("run", func(t *testing.T) {
		for _, name := range sortedKeys(impls) {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				env := ovntest.Start(t)
				res := RunScenario(t, impls[name](t, env), env)
				logConntrack(t, name, res.Conntrack)
				mu.Lock()
				results[name] = res
				mu.Unlock()
				require.Equal(t, expected, res.Verdicts, "%s: every case's verdict", name)
			})
		}
	})
	names := sortedKeys(results)
	for _, a := range names {
		for _, b := range names {
			if a >= b {
				continue
			}
			if d := conntrackDiff(results[a].Conntrack, results[b].Conntrack); d != "" {
				t.Logf("conntrack entries only in %s (-) or only in %s (+):\n%s", a, b, d)
			}
		}
	}
}

// conntrackDiff lists the normalised entries only one table holds,
// ignoring counts and TCP states.
func conntrackDiff(a, b string) string {
	set := func(table string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(table, "\n") {
			if len(l) > 5 {
				m[ctStateRE.ReplaceAllString(l[5:], "")] = true
			}
		}
		return m
	}
	sa, sb := set(a), set(b)
	var d []string
	for _, l := range sortedKeys(sa) {
		if !sb[l] {
			d = append(d, "- "+l)
		}
	}
	for _, l := range sortedKeys(sb) {
		if !sa[l] {
			d = append(d, "+ "+l)
		}
	}
	return strings.Join(d, "\n")
}

var ctStateRE = regexp.MustCompile(`,protoinfo=\(state=[A-Z_]+\)`)

// zoneNames maps each conntrack zone of ch to its name, datapaths' zones
// (a router's DNAT and SNAT zones, a switch's SNAT zone for hairpin) by
// the datapath's name (gw_dnat, sw0_snat) rather than the uuid of its
// Datapath_Binding.
func zoneNames(t *testing.T, ch Chassis, env *ovntest.Env) map[int]string {
	datapaths := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(env.SBCtl("--format=csv", "--data=bare", "--no-headings",
		"--columns=_uuid,external_ids", "list", "Datapath_Binding")), "\n") {
		uuid, ids, _ := strings.Cut(l, ",")
		for _, kv := range strings.Fields(ids) {
			if name, ok := strings.CutPrefix(kv, "name="); ok {
				datapaths[uuid] = name
			}
		}
	}
	names := map[int]string{}
	for name, zone := range ch.CTZones(t) {
		if uuid, kind, ok := strings.Cut(name, "_"); ok && datapaths[uuid] != "" {
			name = datapaths[uuid] + "_" + kind
		}
		names[zone] = name
	}
	return names
}

var (
	ctZoneRE = regexp.MustCompile(`zone=(\d+)`)
	ctPortRE = regexp.MustCompile(`(sport|dport|id)=(\d+)`)
)

// NormaliseConntrack rewrites a dpctl/dump-conntrack table into a form two
// chassis can share: zones by name (zones maps number to name), ICMP ids
// and ports other than the scenario's services as *, lines sorted and
// equal lines counted.
func NormaliseConntrack(dump string, zones map[int]string) string {
	services := map[string]bool{}
	for _, p := range []int{portBackend, portClosed, portClient, portUDP, portOutside, portVIP, portNobody} {
		services[strconv.Itoa(p)] = true
	}
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(dump), "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		l = ctZoneRE.ReplaceAllStringFunc(l, func(m string) string {
			z, _ := strconv.Atoi(strings.TrimPrefix(m, "zone="))
			if n, ok := zones[z]; ok {
				return "zone=" + n
			}
			return m
		})
		l = ctPortRE.ReplaceAllStringFunc(l, func(m string) string {
			k, v, _ := strings.Cut(m, "=")
			if k != "id" && services[v] {
				return m
			}
			return k + "=*"
		})
		count[l]++
	}
	lines := make([]string, 0, len(count))
	for l, n := range count {
		lines = append(lines, fmt.Sprintf("%3dx %s", n, l))
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i][5:] < lines[j][5:] })
	return strings.Join(lines, "\n")
}

// serveTCP serves TCP on port in v until t ends: each connection is
// greeted with "NAME PEER-IP", then every line is answered with
// "NAME LINE". The name in every answer shows which backend carries the
// connection, and PEER-IP what source address NAT left.
func serveTCP(t *testing.T, v *VM, port int) {
	var ln net.Listener
	require.NoError(t, v.NS.Do(func() (err error) {
		ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port))
		return err
	}), "listening in %s", v.Name)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(connDeadline))
				fmt.Fprintf(c, "%s %s\n", v.Name, c.RemoteAddr().(*net.TCPAddr).IP)
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := fmt.Fprintf(c, "%s %s", v.Name, line); err != nil {
						return
					}
				}
			}()
		}
	}()
}

// serveUDP answers every datagram to port in v with "NAME PEER-IP".
func serveUDP(t *testing.T, v *VM, port int) {
	var pc net.PacketConn
	require.NoError(t, v.NS.Do(func() (err error) {
		pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}), "listening in %s", v.Name)
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(fmt.Appendf(nil, "%s %s", v.Name, from.(*net.UDPAddr).IP), from)
		}
	}()
}

// tcpConn connects from v to addr and runs rounds of 4 KiB requests each
// way. Its verdict: "ok NAME from PEER" (who served the connection, and
// the source address it saw), "blocked" (no answer to the SYN),
// "refused", or "broken: why".
func tcpConn(v *VM, addr string) string {
	var verdict string
	err := v.NS.Do(func() error {
		d := net.Dialer{Timeout: dialTimeout}
		c, err := d.Dial("tcp4", addr)
		if err != nil {
			verdict = dialVerdict(err)
			return nil
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(connDeadline))
		r := bufio.NewReader(c)
		greeting, err := r.ReadString('\n')
		if err != nil {
			verdict = "broken: no greeting: " + err.Error()
			return nil
		}
		name, peer, _ := strings.Cut(strings.TrimSpace(greeting), " ")
		payload := strings.Repeat("stateful", 512)
		for i := range rounds {
			req := fmt.Sprintf("%d %s\n", i, payload)
			if _, err := c.Write([]byte(req)); err != nil {
				verdict = fmt.Sprintf("broken: round %d: %v", i, err)
				return nil
			}
			got, err := r.ReadString('\n')
			if err != nil {
				verdict = fmt.Sprintf("broken: round %d: %v", i, err)
				return nil
			}
			if got != name+" "+req {
				verdict = fmt.Sprintf("broken: round %d answered by %.20q, not %s", i, got, name)
				return nil
			}
		}
		verdict = "ok " + name + " from " + peer
		return nil
	})
	if err != nil {
		return "error: " + err.Error()
	}
	return verdict
}

func dialVerdict(err error) string {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return "blocked"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "unreachable"
	}
	return "broken: " + err.Error()
}

// spread makes n connections from v to a VIP and sums their verdicts up:
// how many were ok (each answered every round from the backend that
// greeted it), from which source address, and the set of backends used.
func spread(v *VM, addr string, n int) string {
	ok, backends, peers, other := 0, map[string]int{}, map[string]bool{}, map[string]int{}
	for range n {
		verdict := tcpConn(v, addr)
		var name, peer string
		if _, err := fmt.Sscanf(verdict, "ok %s from %s", &name, &peer); err != nil {
			other[verdict]++
			continue
		}
		ok++
		backends[name]++
		peers[peer] = true
	}
	s := fmt.Sprintf("%d/%d ok, each on one backend; backends %s; from %s", ok, n,
		strings.Join(sortedKeys(backends), " "), strings.Join(sortedKeys(peers), " "))
	if len(other) > 0 {
		s += fmt.Sprintf("; others %v", other)
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// udpExchange sends a request from v to addr, up to two tries, and
// returns "ok NAME from PEER" for the first answer, "refused" if an ICMP
// port unreachable came back instead, or "blocked".
func udpExchange(v *VM, addr string) string {
	var verdict string
	err := v.NS.Do(func() error {
		c, err := net.Dial("udp4", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		buf := make([]byte, 2048)
		for range 2 {
			if _, err := c.Write([]byte("request")); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(udpWait))
			n, err := c.Read(buf)
			if err == nil {
				name, peer, _ := strings.Cut(string(buf[:n]), " ")
				verdict = "ok " + name + " from " + peer
				return nil
			}
			if errors.Is(err, syscall.ECONNREFUSED) {
				verdict = "refused"
				return nil
			}
		}
		verdict = "blocked"
		return nil
	})
	if err != nil {
		return "error: " + err.Error()
	}
	return verdict
}

var receivedRE = regexp.MustCompile(`(\d+) packets transmitted, (\d+) received`)

// ping sends count echo requests from v to ip and returns "ok N/N",
// "blocked 0/N", or "lossy K/N".
func ping(v *VM, ip string, count int) string {
	out, _ := v.NS.Run("ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", ip)
	m := receivedRE.FindStringSubmatch(out)
	if m == nil {
		return "error: " + strings.TrimSpace(out)
	}
	switch got := m[2]; got {
	case m[1]:
		return fmt.Sprintf("ok %s/%d", got, count)
	case "0":
		return fmt.Sprintf("blocked 0/%d", count)
	default:
		return fmt.Sprintf("lossy %s/%d", got, count)
	}
}

// logConntrack writes a conntrack table into the test log and, when
// STATEFUL_CT_OUT names a file, there too (for diffing two runs by hand).
func logConntrack(t *testing.T, label, table string) {
	t.Logf("%s conntrack (normalised), %d entries:\n%s", label, strings.Count(table, "\n")+1, table)
	if path := os.Getenv("STATEFUL_CT_OUT"); path != "" {
		require.NoError(t, os.WriteFile(path+"."+label, []byte(table+"\n"), 0o644))
	}
}
