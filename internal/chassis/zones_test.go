package chassis

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestZonesAssign(t *testing.T) {
	tests := []struct {
		name     string
		stored   map[string]string
		users    []ZoneUser
		want     map[string]uint16 // the whole assignment after Assign
		assigned map[string]uint16
		released []string
		badIDs   int
	}{{
		name:     "lowest free from 1",
		users:    []ZoneUser{{Name: "vm2"}, {Name: "vm1"}, {Name: "dp1_dnat"}},
		want:     map[string]uint16{"dp1_dnat": 1, "vm1": 2, "vm2": 3},
		assigned: map[string]uint16{"dp1_dnat": 1, "vm1": 2, "vm2": 3},
	}, {
		name:     "stored zones are kept and not flushed",
		stored:   map[string]string{"ct-zone-vm1": "7", "ct-zone-vm2": "1", "other": "x"},
		users:    []ZoneUser{{Name: "vm1"}, {Name: "vm2"}, {Name: "vm3"}},
		want:     map[string]uint16{"vm1": 7, "vm2": 1, "vm3": 2},
		assigned: map[string]uint16{"vm3": 2},
	}, {
		name:     "users that left release their zones",
		stored:   map[string]string{"ct-zone-vm1": "1", "ct-zone-gone": "2"},
		users:    []ZoneUser{{Name: "vm1"}, {Name: "vm3"}},
		want:     map[string]uint16{"vm1": 1, "vm3": 2},
		assigned: map[string]uint16{"vm3": 2},
		released: []string{"gone"},
	}, {
		name:     "snat-ct-zone takes the zone from its holder",
		stored:   map[string]string{"ct-zone-vm1": "1", "ct-zone-r_snat": "2"},
		users:    []ZoneUser{{Name: "vm1"}, {Name: "r_snat", Requested: 1}},
		want:     map[string]uint16{"r_snat": 1, "vm1": 2},
		assigned: map[string]uint16{"r_snat": 1, "vm1": 2},
	}, {
		name:     "a requested zone is never handed to another new user",
		users:    []ZoneUser{{Name: "a"}, {Name: "r_snat", Requested: 1}},
		want:     map[string]uint16{"a": 2, "r_snat": 1},
		assigned: map[string]uint16{"a": 2, "r_snat": 1},
	}, {
		name:     "bad and duplicate stored entries are reassigned",
		stored:   map[string]string{"ct-zone-a": "0", "ct-zone-b": "70000", "ct-zone-c": "3", "ct-zone-d": "3", "ct-zone-": "4"},
		users:    []ZoneUser{{Name: "a"}, {Name: "b"}, {Name: "c"}, {Name: "d"}},
		want:     map[string]uint16{"a": 1, "b": 2, "c": 3, "d": 4},
		assigned: map[string]uint16{"a": 1, "b": 2, "d": 4},
		badIDs:   4,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			z, errs := NewZones(tc.stored)
			require.Len(t, errs, tc.badIDs)
			up, err := z.Assign(tc.users)
			require.NoError(t, err)
			require.Equal(t, tc.want, z.All())
			require.Equal(t, tc.assigned, up.Assigned)
			require.Equal(t, tc.released, up.Released)
			// A second Assign with the same users changes nothing.
			again, err := z.Assign(tc.users)
			require.NoError(t, err)
			require.True(t, again.Empty(), "%+v", again)
		})
	}
}

func TestZonesRunOut(t *testing.T) {
	z, _ := NewZones(nil)
	users := make([]ZoneUser, MaxZone+2)
	for i := range users {
		users[i] = ZoneUser{Name: fmt.Sprintf("lport%d", i)}
	}
	up, err := z.Assign(users)
	require.ErrorContains(t, err, "no conntrack zone left for 2 users")
	require.Len(t, up.Assigned, MaxZone)
	_, ok := z.Zone("nobody")
	require.False(t, ok)
}
