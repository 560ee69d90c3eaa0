package ovn

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/ovsbpf/ovsbpf/flowxlate/field"
	"github.com/ovsbpf/ovsbpf/flowxlate/interp"
	"github.com/ovsbpf/ovsbpf/flowxlate/ir"
)

// northdCorpus is every distinct (match, actions) pair ovn-northd produced
// for the topologies of the differential suite in integration/, one per
// line, tab-separated. It seeds the fuzzers and the parser tests.
const northdCorpus = "testdata/northd_lflows.txt"

func readCorpus(t testing.TB) [][2]string {
	t.Helper()
	f, err := os.Open(northdCorpus)
	if err != nil {
		t.Fatalf("opening the seed corpus (regenerate it with the integration suite): %v", err)
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		match, actions, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("%s: line without a tab: %q", northdCorpus, sc.Text())
		}
		out = append(out, [2]string{match, actions})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s is empty", northdCorpus)
	}
	return out
}

// fuzzWorld is a datapath with a few ports, address sets and port groups
// so that names in fuzzed input can resolve.
func fuzzWorld() (*world, *datapath) {
	sb := testSwitch()
	sb.PortGroups = []PortGroup{{UUID: "pg", Name: "1_pg1", Ports: []string{"p1", "p2"}}}
	w := buildWorld(sb)
	return w, w.datapaths["dp0"]
}

// Every match and action northd writes parses and compiles.
func TestNorthdCorpusParses(t *testing.T) {
	st := sharedSymtab()
	opts := defaultOptionTables()
	for _, n := range []string{"offerip", "router", "netmask", "lease_time", "server_id", "server_mac", "dns_server", "domain_name", "mtu", "hostname"} {
		opts.dhcp[n] = genOpt{n, len(opts.dhcp), "ipv4"}
	}
	opts.dhcp["offerip"] = genOpt{"offerip", 0, "ipv4"}
	opts.dhcp["domain_name"] = genOpt{"domain_name", 15, "str"}
	opts.dhcp["hostname"] = genOpt{"hostname", 12, "str"}
	for _, n := range []string{"server_id", "ia_addr", "dns_server"} {
		opts.dhcpv6[n] = genOpt{n, len(opts.dhcpv6), "ipv6"}
	}
	// As northd declares it (ovn-l7.h): a string.
	opts.dhcpv6["domain_search"] = genOpt{"domain_search", len(opts.dhcpv6), "str"}
	_, dp := fuzzWorld()
	for _, c := range readCorpus(t) {
		_, err := parseExprString(c[0], st, permissiveNames{}, nil, 1)
		if err != nil {
			t.Errorf("match %q: %v", c[0], err)
		}
		for _, pipeline := range []int{pipelineIngress, pipelineEgress} {
			if _, _, err := parseActions(c[1], st, pipeline, 5, dp, opts); err != nil && !strings.Contains(err.Error(), "option name") {
				t.Errorf("actions %q: %v", c[1], err)
			}
		}
	}
}

// permissiveNames resolves any address set or port group name.
type permissiveNames struct{}

func (permissiveNames) AddressSet(name string) ([]constant, bool) {
	switch {
	case strings.HasSuffix(name, "_mac"):
		return parseAddressSet([]string{"00:00:00:00:00:01"}), true
	case strings.HasSuffix(name, "_ip6"):
		return parseAddressSet([]string{"fd00::1", "fd00::/64"}), true
	}
	return parseAddressSet([]string{"10.0.0.1", "192.168.0.0/16"}), true
}
func (permissiveNames) PortGroup(string) ([]constant, bool) {
	return []constant{{str: "p1"}, {str: "p3"}}, true
}

func addSeeds(f *testing.F, col int) {
	for _, c := range readCorpus(f) {
		f.Add(c[col])
	}
	for _, s := range []string{"", "(", "a[", "reg0[5..", "1 < tcp.dst < 2 < 3", "\"", "$", "@", "{", "!!!!ip4",
		"ip4.src == 1.2.3.4/0.0.0.0", "ct_lb_mark(backends=[::1]:80,1.2.3.4:5;hash_fields=\"x\");", "clone{clone{clone{};};};"} {
		f.Add(s)
	}
}

// FuzzParseMatch feeds arbitrary text to the match parser and runs what
// parses on a packet: no input may panic or loop.
func FuzzParseMatch(f *testing.F) {
	addSeeds(f, 0)
	st := sharedSymtab()
	_, dp := fuzzWorld()
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseExprString(s, st, testNames{}, nil, 1)
		if err != nil {
			return
		}
		e, err = st.annotate(e, nil)
		if err != nil {
			return
		}
		m := compileMatch(simplify(e, nil), dp)
		var k field.Key
		var mask field.Mask
		interp.Eval(m, &tcp4, &mask)
		interp.Eval(m, &k, &mask)
	})
}

// FuzzParseActions feeds arbitrary text to the action parser and runs what
// parses on a packet: no input may panic or loop.
func FuzzParseActions(f *testing.F) {
	addSeeds(f, 1)
	st := sharedSymtab()
	w, dp := fuzzWorld()
	opts := defaultOptionTables()
	opts.dhcp["offerip"] = genOpt{"offerip", 0, "ipv4"}
	f.Fuzz(func(t *testing.T, s string) {
		acts, _, err := parseActions(s, st, pipelineIngress, 3, dp, opts)
		if err != nil {
			return
		}
		prog := ir.NewProgram()
		tbl := prog.Pipeline(dp.pipeline(pipelineIngress), "").Table(3)
		tbl.Insert(&ir.Rule{Match: ir.Bool(true), Actions: acts, Origin: &lflowOrigin{lf: &LogicalFlow{UUID: "fuzz", Match: "1"}, w: w}})
		interp.New(prog, newEnv(w, RunOptions{})).Run(tcp4, func(c ir.ExecContext) {
			c.At(dp.pipeline(pipelineIngress), 3).Lookup()
		})
	})
}
