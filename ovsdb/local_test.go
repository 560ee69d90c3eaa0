package ovsdb

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/internal/ovntest"
)

// Against a real ovsdb-server with the Open_vSwitch schema, the local
// monitor delivers the chassis configuration and bound interfaces, writes
// back ofport and cur_cfg, and reconnects after the server restarts.
func TestLocalMonitor(t *testing.T) {
	db := ovntest.StartServer(t, "conf", ovntest.VSwitchSchema)
	db.VSCtl(t, "--no-wait", "init")
	db.VSCtl(t, "--no-wait", "set", "Open_vSwitch", ".", "external_ids:system-id=ch1",
		"external_ids:ovn-remote=unix:/sb.sock", "external_ids:ovn-encap-type=geneve", "external_ids:ovn-encap-ip=192.0.2.1")

	m, err := NewLocalMonitor(db.Remote(), testLogger(t))
	require.NoError(t, err)
	m.backoff = backoff{min: 10 * time.Millisecond, max: 100 * time.Millisecond}
	m.probe = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	states := make(chan LocalState)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, states) }()
	t.Cleanup(func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
	next := func(what string, ok func(LocalState) bool) LocalState {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for {
			select {
			case st := <-states:
				if ok(st) {
					return st
				}
			case <-timeout:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}

	st := next("the configuration", func(st LocalState) bool { return st.SystemID != "" })
	require.Equal(t, LocalState{SystemID: "ch1", OVNRemote: "unix:/sb.sock", EncapType: "geneve", EncapIP: "192.0.2.1", Bridge: "br-int"}, st)

	db.VSCtl(t, "--no-wait", "add-br", "br-int", "--", "add-port", "br-int", "tap1",
		"--", "set", "Interface", "tap1", "external_ids:iface-id=vm1", "ofport_request=7",
		"--", "add-port", "br-int", "unbound")
	st = next("the bound interface", func(st LocalState) bool { return len(st.Interfaces) > 0 })
	require.Len(t, st.Interfaces, 1)
	iface := st.Interfaces[0]
	require.Equal(t, LocalInterface{UUID: iface.UUID, Name: "tap1", IfaceID: "vm1", OFPortRequest: 7}, iface)

	// Report writes what ovs-vsctl waits for.
	require.NoError(t, m.Report(ctx, map[string]int{iface.UUID: 7}, nil, st.NextCfg))
	require.Equal(t, "7", strings.TrimSpace(db.VSCtl(t, "get", "Interface", "tap1", "ofport")))
	next("the written ofport", func(st LocalState) bool { return len(st.Interfaces) == 1 && st.Interfaces[0].OFPort == 7 })

	// Zone assignments go into the integration bridge's external_ids,
	// beside what others keep there, and come back in the state.
	db.VSCtl(t, "--no-wait", "br-set-external-id", "br-int", "bridge-id", "br-int")
	st = next("the bridge", func(st LocalState) bool { return st.BridgeExternalIDs["bridge-id"] == "br-int" })
	require.NoError(t, m.WriteBridgeExternalIDs(ctx, st.BridgeUUID, map[string]string{"ct-zone-vm1": "1", "ct-zone-vm2": "2"}, nil))
	require.NoError(t, m.WriteBridgeExternalIDs(ctx, st.BridgeUUID, map[string]string{"ct-zone-vm1": "3"}, []string{"ct-zone-vm2"}))
	st = next("the zones", func(st LocalState) bool { return st.BridgeExternalIDs["ct-zone-vm1"] == "3" })
	require.Equal(t, map[string]string{"bridge-id": "br-int", "ct-zone-vm1": "3"}, st.BridgeExternalIDs)
	require.Equal(t, "3", strings.TrimSpace(db.VSCtl(t, "br-get-external-id", "br-int", "ct-zone-vm1")))

	// After a restart the monitor delivers the state again, and writes work.
	db.Stop()
	require.Eventually(t, func() bool {
		return m.Report(ctx, map[string]int{iface.UUID: 8}, nil, st.NextCfg) == ErrNotConnected
	}, 10*time.Second, 10*time.Millisecond, "writes fail while the server is down")
	db.Start(t)
	next("the state after reconnecting", func(st LocalState) bool { return st.SystemID == "ch1" && len(st.Interfaces) == 1 })
	require.Eventually(t, func() bool { return m.Report(ctx, map[string]int{iface.UUID: 8}, nil, st.NextCfg) == nil },
		10*time.Second, 10*time.Millisecond)
	require.Equal(t, "8", strings.TrimSpace(db.VSCtl(t, "get", "Interface", "tap1", "ofport")))
}
