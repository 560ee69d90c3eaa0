// Package ovsdb owns ovsbpf's access to OVSDB: the libovsdb models generated
// from the schemas in schema/ (packages sbmodel and vswitchmodel, made by go
// generate), the Southbound reader and monitor that turn the OVN Southbound
// database into the plain values of flowxlate/ovn, and the monitor of the
// local Open_vSwitch database with its write-back.
//
// Remotes are "unix:PATH" or "tcp:HOST:PORT"; anything else fails with
// ErrBadRemote before any connection is tried.
//
// Lifetimes. Nothing here is global: every call or monitor owns its own
// libovsdb client, and no client outlives its owner.
//
//   - ReadSouthbound opens a client, monitors the tables a chassis needs
//     (a monitor on named tables, not a select-all), waits for their initial
//     contents, converts them and closes the client before it returns,
//     whether it succeeds or not. Its context bounds all of it.
//   - A SouthboundMonitor or LocalMonitor holds no connection until Run.
//     Run opens a client per connection, closes it when the connection is
//     lost (the server closes it, or stops answering the echo probe) and
//     opens a new one after an exponential backoff, until its context is
//     cancelled; then it closes the client and returns. A monitor is run
//     by one Run at a time.
//   - After every (re)connection a SouthboundMonitor delivers a full
//     snapshot, which replaces everything delivered before, then one
//     ovn.Change per batch of changes. Values delivered own their memory:
//     they share nothing with the client's cache and the receiver may keep
//     or modify them. Deliveries block until received, and changes that
//     arrive meanwhile are merged into the next one.
//
// Rows of each table, and the members of each set column, are ordered by
// UUID or value, so that the same database reads the same way every time.
package ovsdb

//go:generate go tool modelgen -p sbmodel -o sbmodel schema/ovn-sb.ovsschema
//go:generate go tool modelgen -p vswitchmodel -o vswitchmodel schema/vswitch.ovsschema
