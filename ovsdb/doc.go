// Package ovsdb owns ovsbpf's access to OVSDB: the libovsdb models generated
// from the schemas in schema/ (packages sbmodel and vswitchmodel), and the
// Southbound reader and monitor that turn the OVN Southbound database into
// the plain values the OVN front end of flowxlate takes.
//
// Lifetimes: ReadSouthbound opens a client, waits for the monitored tables'
// initial contents, converts them and closes the client before it returns.
// A SouthboundMonitor owns its client for as long as Run runs: Run connects,
// reconnects with backoff when the connection drops, and closes the client
// when its context is cancelled.
package ovsdb

//go:generate go tool modelgen -p sbmodel -o sbmodel schema/ovn-sb.ovsschema
//go:generate go tool modelgen -p vswitchmodel -o vswitchmodel schema/vswitch.ovsschema
