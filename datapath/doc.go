// Package datapath will own the eBPF datapath's life on a chassis: loading
// and pinning the programs and maps of bpf/ under /sys/fs/bpf/ovsbpf/,
// attaching and detaching ports, the port table, installing, deleting and
// dumping megaflow cache entries with their statistics, and executing
// packets. It is not written yet; see docs/architecture.md.
package datapath
