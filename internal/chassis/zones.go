package chassis

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Conntrack zones, as ovn-controller assigns them.
//
// Every local logical port has a zone of its own, and every local
// datapath two more, named "<datapath uuid>_dnat" and "<datapath
// uuid>_snat" (OVN 23.03, the release Debian ships, allocates them for
// switches as well as routers). Zone 0 is never handed out: it is the
// zone of traffic no logical flow tracked. A new user takes the lowest
// free zone from 1 up. A router may ask for a fixed SNAT zone
// (Datapath_Binding external_ids:snat-ct-zone); whoever holds that zone
// gives it up and gets another.
//
// Assignments live in the integration bridge's external_ids as
// ct-zone-<name>=<zone>, where ovn-controller keeps them, so a restart, or
// a switch between ovsbpfd and ovn-controller, keeps every connection in
// the zone it was tracked in.

// MaxZone is the highest conntrack zone (zones are 16 bits).
const MaxZone = 65535

// zoneKeyPrefix starts the integration bridge's external_ids keys that
// hold zone assignments.
const zoneKeyPrefix = "ct-zone-"

// ZoneKey returns the integration bridge's external_ids key for the zone
// of name.
func ZoneKey(name string) string { return zoneKeyPrefix + name }

// DNATZoneName and SNATZoneName name a datapath's two NAT zones.
func DNATZoneName(datapathUUID string) string { return datapathUUID + "_dnat" }

// SNATZoneName: see DNATZoneName.
func SNATZoneName(datapathUUID string) string { return datapathUUID + "_snat" }

// ZoneUser is one name that needs a zone.
type ZoneUser struct {
	Name string
	// Requested, if not 0, is the zone this user must have
	// (snat-ct-zone).
	Requested uint16
}

// ZoneUpdate is what one Assign changed.
type ZoneUpdate struct {
	// Assigned holds the users that got a zone, new or moved: their
	// zones must be flushed before a pipeline uses them, and written
	// to the database.
	Assigned map[string]uint16
	// Released are the users that no longer need their zone; their keys
	// leave the database.
	Released []string
}

// Empty reports whether the update changed nothing.
func (u ZoneUpdate) Empty() bool { return len(u.Assigned) == 0 && len(u.Released) == 0 }

// Zones is the zone assignment of one chassis. It is not safe for
// concurrent use.
type Zones struct {
	byName map[string]uint16
	owner  map[uint16]string
}

// NewZones starts from the assignments stored in the integration bridge's
// external_ids (every ct-zone-* key; others are ignored). An entry that is
// not a zone in 1..65535, or that names a zone another entry already
// holds, is left out and reported, so the next Assign gives that user a
// zone of its own.
func NewZones(externalIDs map[string]string) (*Zones, []error) {
	z := &Zones{byName: map[string]uint16{}, owner: map[uint16]string{}}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(externalIDs)) {
		name, ok := strings.CutPrefix(key, zoneKeyPrefix)
		if !ok {
			continue
		}
		v := externalIDs[key]
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 || name == "" {
			errs = append(errs, fmt.Errorf("integration bridge external_ids:%s=%q is not a conntrack zone in 1..%d; reassigning", key, v, MaxZone))
			continue
		}
		zone := uint16(n)
		if other, taken := z.owner[zone]; taken {
			errs = append(errs, fmt.Errorf("integration bridge external_ids:%s=%s names the zone %s already holds; reassigning", key, v, other))
			continue
		}
		z.byName[name], z.owner[zone] = zone, name
	}
	return z, errs
}

// Zone returns the zone of name.
func (z *Zones) Zone(name string) (uint16, bool) {
	n, ok := z.byName[name]
	return n, ok
}

// All returns a copy of every assignment.
func (z *Zones) All() map[string]uint16 { return maps.Clone(z.byName) }

// Assign makes the assignment fit users: users that left release their
// zones, requested zones go to their requesters, and every other new user
// gets the lowest free zone. It returns what changed. If users want more
// zones than exist, those past the last get none and the error says so.
func (z *Zones) Assign(users []ZoneUser) (ZoneUpdate, error) {
	up := ZoneUpdate{Assigned: map[string]uint16{}}
	want := make(map[string]ZoneUser, len(users))
	for _, u := range users {
		want[u.Name] = u
	}
	for _, name := range slices.Sorted(maps.Keys(z.byName)) {
		if _, ok := want[name]; !ok {
			z.release(name)
			up.Released = append(up.Released, name)
		}
	}
	// Requests first, so that a requested zone is free for its
	// requester whoever held it. Two requests for one zone: the first
	// by name wins, the other is served like any user.
	names := slices.Sorted(maps.Keys(want))
	requested := map[uint16]string{}
	for _, name := range names {
		u := want[name]
		if u.Requested == 0 {
			continue
		}
		if _, dup := requested[u.Requested]; dup {
			continue
		}
		requested[u.Requested] = name
		if cur, ok := z.byName[name]; ok && cur == u.Requested {
			continue
		}
		if holder, ok := z.owner[u.Requested]; ok {
			z.release(holder) // it gets another zone below
		}
		if _, ok := z.byName[name]; ok {
			z.release(name)
		}
		z.byName[name], z.owner[u.Requested] = u.Requested, name
		up.Assigned[name] = u.Requested
	}
	next := uint16(1)
	var short []string
	for _, name := range names {
		if _, ok := z.byName[name]; ok {
			continue
		}
		for next != 0 && (z.owner[next] != "" || requested[next] != "") {
			next++ // wraps to 0 past MaxZone: no zone left
		}
		if next == 0 {
			short = append(short, name)
			continue
		}
		z.byName[name], z.owner[next] = next, name
		up.Assigned[name] = next
	}
	if len(short) > 0 {
		return up, fmt.Errorf("no conntrack zone left for %d users (%s...): all %d are taken", len(short), short[0], MaxZone)
	}
	return up, nil
}

func (z *Zones) release(name string) {
	if n, ok := z.byName[name]; ok {
		delete(z.owner, n)
		delete(z.byName, name)
	}
}
