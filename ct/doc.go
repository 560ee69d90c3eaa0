// Package ct will own connection tracking in eBPF: the key and entry layout
// shared with bpf/, the state machine, garbage collection, dump and flush,
// and NAT. It is not written yet; see docs/architecture.md.
package ct
