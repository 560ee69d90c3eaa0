package ovsdb

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/ovn"
	"github.com/ovsbpf/ovsbpf/ovsdb/sbmodel"
)

// runMonitor runs a monitor on remote, with quick reconnection and probes,
// until t ends, and returns what it delivers.
func runMonitor(t *testing.T, remote string) <-chan Update {
	t.Helper()
	m, err := NewSouthboundMonitor(remote, testLogger(t))
	require.NoError(t, err)
	m.backoff = backoff{min: 10 * time.Millisecond, max: 100 * time.Millisecond}
	m.probe = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	updates := make(chan Update)
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx, updates) }()
	t.Cleanup(func() {
		cancel()
		require.ErrorIs(t, <-done, context.Canceled)
	})
	return updates
}

// nextUpdate returns the monitor's next delivery.
func nextUpdate(t *testing.T, updates <-chan Update) Update {
	t.Helper()
	select {
	case u := <-updates:
		return u
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the monitor")
		return Update{}
	}
}

// requireQuiet checks that the monitor delivers nothing for a while.
func requireQuiet(t *testing.T, updates <-chan Update) {
	t.Helper()
	select {
	case u := <-updates:
		t.Fatalf("unexpected delivery: full %v, change %+v", u.Full != nil, u.Change)
	case <-time.After(200 * time.Millisecond):
	}
}

// The monitor delivers a full snapshot and then, for each transaction, the
// rows it changed: inserted and updated rows with their whole new value,
// deleted rows by UUID.
func TestSouthboundMonitorChanges(t *testing.T) {
	s := startMemServer(t)
	id := s.insert(t,
		&sbmodel.DatapathBinding{UUID: "dp", TunnelKey: 1},
		&sbmodel.LogicalFlow{UUID: "lf0", LogicalDatapath: ptr("dp"), Pipeline: "ingress", Match: "1", Actions: "next;"},
		&sbmodel.AddressSet{UUID: "as", Name: "as1", Addresses: []string{"10.0.0.1"}},
	)
	updates := runMonitor(t, s.remote())

	first := nextUpdate(t, updates)
	require.NotNil(t, first.Full, "a full snapshot comes first")
	require.Nil(t, first.Change)
	require.Len(t, first.Full.LogicalFlows, 1)
	require.Len(t, first.Full.AddressSets, 1)
	requireQuiet(t, updates) // the initial rows come once, not again as a change

	lf := func(match string) ovn.LogicalFlow {
		return ovn.LogicalFlow{UUID: id["lf1"], Datapath: id["dp"], Pipeline: "egress", TableID: 3, Priority: 100,
			Match: match, Actions: "drop;", StageName: "ls_out_acl"}
	}
	steps := []struct {
		name string
		do   func(t *testing.T)
		want func() ovn.Change
	}{{
		name: "insert a logical flow",
		do: func(t *testing.T) {
			for k, v := range s.insert(t, &sbmodel.LogicalFlow{UUID: "lf1", LogicalDatapath: ptr(id["dp"]),
				Pipeline: "egress", TableID: 3, Priority: 100, Match: "ip4", Actions: "drop;",
				ExternalIDs: map[string]string{"stage-name": "ls_out_acl"}}) {
				id[k] = v
			}
		},
		want: func() ovn.Change {
			return ovn.Change{Updated: ovn.Southbound{LogicalFlows: []ovn.LogicalFlow{lf("ip4")}}, Deleted: map[string][]string{}}
		},
	}, {
		name: "update its match",
		do: func(t *testing.T) {
			row := &sbmodel.LogicalFlow{UUID: id["lf1"], Match: "ip4 && tcp"}
			s.update(t, row, &row.Match)
		},
		want: func() ovn.Change { // the whole row, not only the column
			return ovn.Change{Updated: ovn.Southbound{LogicalFlows: []ovn.LogicalFlow{lf("ip4 && tcp")}}, Deleted: map[string][]string{}}
		},
	}, {
		name: "delete it",
		do:   func(t *testing.T) { s.delete(t, &sbmodel.LogicalFlow{UUID: id["lf1"]}) },
		want: func() ovn.Change {
			return ovn.Change{Deleted: map[string][]string{ovn.TableLogicalFlow: {id["lf1"]}}}
		},
	}, {
		name: "add an address to an address set",
		do: func(t *testing.T) {
			row := &sbmodel.AddressSet{UUID: id["as"], Addresses: []string{"10.0.0.1", "10.0.0.2"}}
			s.update(t, row, &row.Addresses)
		},
		want: func() ovn.Change {
			return ovn.Change{Updated: ovn.Southbound{AddressSets: []ovn.AddressSet{
				{UUID: id["as"], Name: "as1", Addresses: []string{"10.0.0.1", "10.0.0.2"}},
			}}, Deleted: map[string][]string{}}
		},
	}}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			u := nextUpdate(t, updates)
			require.Nil(t, u.Full)
			require.NotNil(t, u.Change)
			require.Equal(t, st.want(), *u.Change)
		})
	}
	requireQuiet(t, updates)
}

// When the connection breaks, the monitor reconnects and starts over with
// a full snapshot that includes what changed meanwhile.
func TestSouthboundMonitorReconnects(t *testing.T) {
	s := startMemServer(t)
	p := startProxy(t, s.sock)
	updates := runMonitor(t, p.remote())
	require.NotNil(t, nextUpdate(t, updates).Full)

	tests := []struct {
		name      string
		breakConn func()
	}{
		{"the server closes the connection", p.cut},
		{"the server stops answering", p.blackhole},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.breakConn()
			dp := s.insert(t, &sbmodel.DatapathBinding{UUID: "dp", TunnelKey: 10 + i})["dp"]
			u := nextUpdate(t, updates)
			require.NotNil(t, u.Full, "a new snapshot after reconnecting")
			require.Len(t, u.Full.Datapaths, i+1)
			require.Contains(t, u.Full.Datapaths, ovn.Datapath{UUID: dp, TunnelKey: 10 + i})
			requireQuiet(t, updates)
		})
	}
}
