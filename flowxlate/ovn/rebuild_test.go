package ovn

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ovsbpf/ovsbpf/flowxlate/trace"
)

// Rebuilt gives what Apply gives, for a change that rebuilds (a datapath
// added) and one that does not, and leaves the translator it started from
// deciding as before.
func TestRebuiltMatchesApplyAndLeavesTheOriginal(t *testing.T) {
	tests := []struct {
		name     string
		ch       Change
		rebuilds bool
	}{
		{"datapath added", Change{Updated: Southbound{
			Datapaths: []Datapath{{UUID: "dp1", TunnelKey: 2, ExternalIDs: map[string]string{"name": "sw1"}}},
			Ports:     []Port{{UUID: "pb9", Name: "p9", Datapath: "dp1", TunnelKey: 1}},
			LogicalFlows: []LogicalFlow{{UUID: "0000000c-0000-0000-0000-000000000000", Datapath: "dp1",
				Pipeline: "ingress", TableID: 0, Priority: 0, Match: "1", Actions: "drop;"}},
		}}, true},
		{"flow deleted and address set changed", Change{
			Updated: Southbound{AddressSets: []AddressSet{{UUID: "as1", Name: "blocked", Addresses: []string{"10.0.0.2"}}}},
			Deleted: map[string][]string{TableLogicalFlow: {"00000008-0000-0000-0000-000000000000"}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.rebuilds, tt.ch.Rebuilds())
			orig := NewTranslator(Options{})
			require.NoError(t, orig.Load(testSwitch()))
			want := map[string]string{}
			for _, mf := range []string{udpP1toP2, spoofed, bcast, toBlocked} {
				want[mf] = trace.Detailed(mustTrace(t, orig, mf).Trace)
			}

			rebuilt := orig.Rebuilt(&tt.ch)
			applied := NewTranslator(Options{})
			require.NoError(t, applied.Load(testSwitch()))
			require.NoError(t, applied.Apply(&tt.ch))
			require.Equal(t, applied.Stats(), rebuilt.Stats())
			require.NotEqual(t, orig.Stats(), rebuilt.Stats(), "the change took")
			for _, mf := range []string{udpP1toP2, spoofed, bcast, toBlocked} {
				a, b := mustTrace(t, applied, mf), mustTrace(t, rebuilt, mf)
				require.Equal(t, trace.Detailed(a.Trace), trace.Detailed(b.Trace), mf)
				require.Equal(t, a.Mask, b.Mask, mf)
				require.Equal(t, want[mf], trace.Detailed(mustTrace(t, orig, mf).Trace), "the original is unchanged: %s", mf)
			}
			require.Equal(t, testSwitch().LogicalFlows, orig.sb.LogicalFlows, "the original's rows are unchanged")
		})
	}
}
