package ovsdb

import (
	"context"
	"log/slog"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// testLogger logs to t until t's cleanups have run: libovsdb's goroutines
// may log after a test returns, when t.Log panics.
func testLogger(t *testing.T) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first, so it runs last
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	mu      sync.Mutex
	t       *testing.T
	stopped bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

func buildSwitch(t *testing.T, c *ovntest.Env) {
	c.NBCtl("ls-add", "sw0")
	c.NBCtl("lsp-add", "sw0", "p1", "--", "lsp-set-addresses", "p1", "00:00:00:00:00:01 10.0.0.1",
		"--", "lsp-set-port-security", "p1", "00:00:00:00:00:01 10.0.0.1")
	c.NBCtl("lsp-add", "sw0", "p2", "--", "lsp-set-addresses", "p2", "00:00:00:00:00:02 10.0.0.2")
	c.NBCtl("pg-add", "pg1", "p1", "p2")
	c.NBCtl("acl-add", "pg1", "from-lport", "1001", "inport == @pg1 && ip4 && ip4.dst == $pg1_ip4", "allow-related")
	c.Sync()
}

// ReadSouthbound against a real ovsdb-server and ovn-northd returns what
// ovn-sbctl shows.
func TestReadSouthbound(t *testing.T) {
	c := ovntest.Start(t)
	buildSwitch(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sb, err := ReadSouthbound(ctx, c.SBRemote(), testLogger(t))
	require.NoError(t, err)

	nFlows := len(strings.Fields(c.SBCtl("--bare", "--columns=_uuid", "list", "Logical_Flow")))
	require.Len(t, sb.LogicalFlows, nFlows)
	require.Greater(t, nFlows, 50)

	require.Len(t, sb.Datapaths, 1)
	require.Equal(t, "sw0", sb.Datapaths[0].ExternalIDs["name"])
	ports := map[string]ovn.Port{}
	for _, p := range sb.Ports {
		ports[p.Name] = p
	}
	require.Contains(t, ports, "p1")
	require.Equal(t, []string{"00:00:00:00:00:01 10.0.0.1"}, ports["p1"].PortSecurity)
	require.Equal(t, sb.Datapaths[0].UUID, ports["p1"].Datapath)

	names := map[string]bool{}
	for _, pg := range sb.PortGroups {
		names[pg.Name] = true
	}
	require.True(t, names[strings.TrimSpace(c.SBCtl("--bare", "--columns=tunnel_key", "list", "Datapath_Binding"))+"_pg1"],
		"port groups are per datapath in the southbound: %v", names)

	var withDP int
	for _, lf := range sb.LogicalFlows {
		if lf.Datapath != "" || lf.DatapathGroup != "" {
			withDP++
		}
	}
	require.Equal(t, nFlows, withDP, "every flow names its datapath or datapath group")
	require.NotEmpty(t, sb.DHCPOptions, "northd fills DHCP_Options")

	// The whole snapshot compiles.
	tr := ovn.NewTranslator(ovn.Options{})
	require.NoError(t, tr.Load(sb))
	require.Empty(t, tr.Skipped())
}

// The reader speaks TCP as well as unix sockets.
func TestReadSouthboundTCP(t *testing.T) {
	sb := ovntest.StartServerTCP(t, "sb", ovntest.SBSchema)
	out, err := exec.Command("ovn-sbctl", "--db="+sb.Remote(), "create", "Datapath_Binding", "tunnel_key=7", "external_ids:name=sw7").CombinedOutput()
	require.NoError(t, err, string(out))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := ReadSouthbound(ctx, sb.TCPRemote(), testLogger(t))
	require.NoError(t, err)
	require.Len(t, got.Datapaths, 1)
	require.Equal(t, 7, got.Datapaths[0].TunnelKey)
	require.Equal(t, strings.TrimSpace(string(out)), got.Datapaths[0].UUID)
}

// nextMatching returns the monitor's next delivery that ok accepts,
// skipping others: ovn-northd writes in several transactions.
func nextMatching(t *testing.T, updates <-chan Update, what string, ok func(Update) bool) Update {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case u := <-updates:
			if ok(u) {
				return u
			}
		case <-timeout:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// flowsMatching returns the UUIDs of the logical flows whose match
// contains s.
func flowsMatching(lfs []ovn.LogicalFlow, s string) []string {
	var out []string
	for _, lf := range lfs {
		if strings.Contains(lf.Match, s) {
			out = append(out, lf.UUID)
		}
	}
	return out
}

// Against a real ovsdb-server and ovn-northd, the monitor delivers a
// snapshot, then changes; after the server restarts, a new snapshot and
// changes again.
func TestSouthboundMonitor(t *testing.T) {
	c := ovntest.Start(t)
	buildSwitch(t, c)
	updates := runMonitor(t, c.SBRemote())

	first := nextUpdate(t, updates)
	require.NotNil(t, first.Full, "a full snapshot comes first")
	requireQuiet(t, updates)
	tr := ovn.NewTranslator(ovn.Options{})
	require.NoError(t, tr.Load(first.Full))

	addACL := func(port string) []string {
		match := "outport == @pg1 && udp.dst == " + port
		c.NBCtl("acl-add", "pg1", "to-lport", "1002", match, "drop")
		c.Sync()
		u := nextMatching(t, updates, "the new ACL's flows", func(u Update) bool {
			return u.Change != nil && len(flowsMatching(u.Change.Updated.LogicalFlows, "udp.dst == "+port)) > 0
		})
		require.NoError(t, tr.Apply(u.Change))
		return flowsMatching(u.Change.Updated.LogicalFlows, "udp.dst == "+port)
	}

	// A new ACL reaches the monitor as new logical flows; deleting the ACL
	// deletes them.
	added := addACL("53")
	c.NBCtl("acl-del", "pg1", "to-lport", "1002", "outport == @pg1 && udp.dst == 53")
	c.Sync()
	u := nextMatching(t, updates, "the deletion", func(u Update) bool {
		return u.Change != nil && len(u.Change.Deleted[ovn.TableLogicalFlow]) > 0
	})
	require.ElementsMatch(t, added, u.Change.Deleted[ovn.TableLogicalFlow])
	require.NoError(t, tr.Apply(u.Change))

	// The server restarts; the monitor reconnects, starts over, and follows
	// changes again.
	c.RestartSB()
	again := nextMatching(t, updates, "a snapshot after reconnecting", func(u Update) bool { return u.Full != nil })
	require.Len(t, again.Full.LogicalFlows, len(first.Full.LogicalFlows))
	require.NoError(t, tr.Load(again.Full))
	require.NotEmpty(t, addACL("54"))
}
