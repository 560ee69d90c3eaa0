package ctdiff

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/netns"
)

// tracker is one implementation under the policy: a middle box between
// the client and the server.
type tracker interface {
	// send puts frame (built for the next hop nextHop(from)) on from's
	// wire and reports whether it came out on the other side.
	send(t *testing.T, from side, frame []byte) bool
	nextHop(from side) net.HardwareAddr
	// state is the tracker's state for sequence sq's connection, in the
	// sequence's terms (see sequence.state).
	state(t *testing.T, sq *sequence) string
}

// wires is the test topology: the client's and the server's namespaces,
// each with one interface and no address, cabled to the middle box's two
// ports.
type wires struct {
	ends    [2]*netns.NS // by side
	caps    [2]*netns.Capture
	mid     *netns.NS
	midMACs [2]net.HardwareAddr // the middle box's port facing each side
}

// endIf is the name of each end's interface, midIf of the middle box's
// port facing each side.
var (
	endIf = [2]string{"c0", "s0"}
	midIf = [2]string{"m0", "m1"}
)

func newWires(t *testing.T) *wires {
	w := &wires{mid: netns.New(t, "ovsbpf-ctmid")}
	for s := range w.ends {
		end := netns.New(t, "ovsbpf-ctend")
		end.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		w.mid.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
		w.mid.MustRun(t, "ip", "link", "add", midIf[s], "type", "veth", "peer", "name", endIf[s], "netns", end.Name)
		w.mid.MustRun(t, "ip", "link", "set", midIf[s], "up")
		end.MustRun(t, "ip", "link", "set", endIf[s], "up")
		mac, err := w.mid.MAC(midIf[s])
		require.NoError(t, err)
		w.ends[s], w.midMACs[s] = end, mac
		w.caps[s] = netns.NewCapture(t, end, endIf[s])
	}
	return w
}

// deliver sends frame from one end and waits for it at the other: any
// IPv4 frame the middle box sends there within the wait counts (the ends
// send nothing of their own, and steps go one at a time).
func (w *wires) deliver(t *testing.T, from side, frame []byte) bool {
	t.Helper()
	to := 1 - from
	require.NoError(t, w.ends[from].Send(endIf[from], frame, 1))
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		f := w.caps[to].Next(time.Until(end))
		if len(f) >= 14 && net.HardwareAddr(f[6:12]).String() == w.midMACs[to].String() && f[12] == 0x08 && f[13] == 0x00 {
			return true
		}
	}
	return false
}

// kernel is nf_conntrack: the middle box forwards with the kernel's
// routing and filters with nftables on conntrack state, strict as the
// kernel can be made (no pick-up of connections from mid-stream, window
// checks on).
type kernel struct{ *wires }

func newKernel(t *testing.T) *kernel {
	k := &kernel{newWires(t)}
	m := k.mid
	m.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	for s, ip := range []net.IP{clientIP, serverIP} {
		mac := []net.HardwareAddr{clientMAC, serverMAC}[s]
		m.MustRun(t, "ip", "route", "add", ip.String()+"/32", "dev", midIf[s])
		m.MustRun(t, "ip", "neigh", "add", ip.String(), "lladdr", mac.String(), "dev", midIf[s], "nud", "permanent")
	}
	rules := fmt.Sprintf(`table inet ctdiff {
	chain forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		ct state invalid drop
		iifname "%[1]s" tcp dport %[2]d ct state new accept
		iifname "%[1]s" udp dport %[3]d ct state new accept
		iifname "%[1]s" icmp type echo-request ct state new accept
	}
}
`, midIf[client], allowedTCPPort, allowedUDPPort)
	m.MustRun(t, "nft", "-f", writeTemp(t, rules))
	// The rules loaded nf_conntrack, which brings these knobs; both
	// are per namespace.
	m.MustRun(t, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_loose=0", "net.netfilter.nf_conntrack_tcp_be_liberal=0")
	return k
}

func (k *kernel) send(t *testing.T, from side, frame []byte) bool { return k.deliver(t, from, frame) }

func (k *kernel) nextHop(from side) net.HardwareAddr { return k.midMACs[from] }

// conntrackLine picks the fields of one conntrack -L line.
var conntrackLine = regexp.MustCompile(`^(\w+)\s+\d+\s+\d+\s+(?:([A-Z_]+)\s+)?src=`)

func (k *kernel) state(t *testing.T, sq *sequence) string {
	t.Helper()
	var filter []string
	switch sq.steps[0].kind {
	case "udp":
		filter = []string{"-p", "udp", "--orig-port-src", fmt.Sprint(sq.sport)}
		if sq.steps[0].from == server {
			filter = []string{"-p", "udp", "--orig-port-dst", fmt.Sprint(sq.sport)}
		}
	case "icmp-echo", "icmp-reply", "icmp-unreach":
		filter = []string{"-p", "icmp", "--icmp-id", fmt.Sprint(sq.sport)}
	default:
		filter = []string{"-p", "tcp", "--orig-port-src", fmt.Sprint(sq.sport)}
		if sq.steps[0].from == server {
			filter = []string{"-p", "tcp", "--orig-port-dst", fmt.Sprint(sq.sport)}
		}
	}
	out, err := k.mid.Run("conntrack", append([]string{"-L"}, filter...)...)
	require.NoError(t, err, "conntrack -L: %s", out)
	var states []string
	for _, line := range strings.Split(out, "\n") {
		m := conntrackLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch {
		case m[1] == "tcp":
			states = append(states, m[2])
		case strings.Contains(line, "[UNREPLIED]"):
			states = append(states, "unreplied")
		default:
			states = append(states, "replied")
		}
	}
	require.LessOrEqual(t, len(states), 1, "one connection per sequence: %s", out)
	if len(states) == 0 {
		return ""
	}
	return states[0]
}

// run runs every sequence through tr, and returns each packet's verdict
// and each connection's final state, by sequence name.
func run(t *testing.T, tr tracker) map[string]outcome {
	t.Helper()
	got := map[string]outcome{}
	for i := range sequences {
		sq := &sequences[i]
		var o outcome
		for j := range sq.steps {
			st := &sq.steps[j]
			o.verdicts = append(o.verdicts, tr.send(t, st.from, frame(t, sq, st, tr.nextHop(st.from))))
		}
		o.state = tr.state(t, sq)
		got[sq.name] = o
	}
	return got
}

// outcome is what one tracker did with one sequence.
type outcome struct {
	verdicts []bool // forwarded, per step
	state    string
}

// The kernel gives every sequence the verdicts and state it claims: the
// oracle is asked what the sequences were written to test.
func TestKernelOracle(t *testing.T) {
	got := run(t, newKernel(t))
	for _, sq := range sequences {
		var want outcome
		for _, st := range sq.steps {
			want.verdicts = append(want.verdicts, st.forwarded)
		}
		want.state = sq.state
		assert.Equal(t, want, got[sq.name], sq.name)
	}
}

func writeTemp(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.nft")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}
