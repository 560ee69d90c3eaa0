package ovsdb

import (
	"context"
	"errors"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

func TestCheckRemote(t *testing.T) {
	tests := []struct {
		remote string
		ok     bool
	}{
		{"unix:/run/ovn/ovnsb_db.sock", true},
		{"tcp:127.0.0.1:6642", true},
		{"tcp:[::1]:6642", true},
		{"unix:", false},
		{"tcp:127.0.0.1", false},
		{"/run/ovn/ovnsb_db.sock", false},
		{"ssl:127.0.0.1:6642", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.remote, func(t *testing.T) {
			err := CheckRemote(tt.remote)
			if tt.ok {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, ErrBadRemote)
				require.Contains(t, err.Error(), "want unix:PATH or tcp:HOST:PORT")
			}
		})
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
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

func TestReadSouthboundErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := ReadSouthbound(ctx, "nonsense", nil)
	require.ErrorIs(t, err, ErrBadRemote)

	_, err = ReadSouthbound(ctx, "unix:"+filepath.Join(t.TempDir(), "absent.sock"), nil)
	require.Error(t, err)
	require.Contains(t, err.Error(), "connecting to southbound unix:")
}

// The monitor delivers a snapshot, then changes, and after the server
// restarts, a new snapshot.
func TestSouthboundMonitor(t *testing.T) {
	c := ovntest.Start(t)
	buildSwitch(t, c)
	m, err := NewSouthboundMonitor(c.SBRemote(), testLogger(t))
	require.NoError(t, err)
	m.minBackoff = 20 * time.Millisecond

	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan Update, 16)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, updates) }()
	defer func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	}()

	next := func(what string, ok func(Update) bool) Update {
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
	first := next("the initial snapshot", func(u Update) bool { return u.Full != nil })
	tr := ovn.NewTranslator(ovn.Options{})
	require.NoError(t, tr.Load(first.Full))

	// A new ACL reaches the monitor as new logical flows.
	c.NBCtl("acl-add", "pg1", "to-lport", "1002", "outport == @pg1 && udp.dst == 53", "drop")
	c.Sync()
	u := next("the new ACL's flows", func(u Update) bool {
		if u.Change == nil {
			return false
		}
		for _, lf := range u.Change.Updated.LogicalFlows {
			if strings.Contains(lf.Match, "udp.dst == 53") {
				return true
			}
		}
		return false
	})
	require.NoError(t, tr.Apply(u.Change))

	// Deleting it deletes them.
	c.NBCtl("acl-del", "pg1", "to-lport", "1002", "outport == @pg1 && udp.dst == 53")
	c.Sync()
	next("the deletion", func(u Update) bool { return u.Change != nil && len(u.Change.Deleted[ovn.TableLogicalFlow]) > 0 })

	// The server restarts; the monitor reconnects and starts over.
	c.RestartSB()
	again := next("a snapshot after reconnecting", func(u Update) bool { return u.Full != nil })
	require.Len(t, again.Full.LogicalFlows, len(first.Full.LogicalFlows))
}

func TestNewSouthboundMonitorRejectsBadRemote(t *testing.T) {
	_, err := NewSouthboundMonitor("tcp:nohostport", nil)
	require.True(t, errors.Is(err, ErrBadRemote))
}
