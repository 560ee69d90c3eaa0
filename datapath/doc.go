// Package datapath owns the eBPF datapath on a chassis: it loads the
// programs and maps of package bpf, pins them under /sys/fs/bpf/ovsbpf/
// (mounting bpffs if it is missing), attaches ports (TCX on the ingress of
// each VIF's host-side interface), keeps the port table, and installs,
// deletes and dumps megaflows with their statistics. It also executes
// packets for the slow path and decodes the upcall records the fast path
// writes, because it owns their layout; reading the ring is package
// upcall's job.
//
// Lifetime: Open loads (or, with a pin path, takes over) the datapath;
// Close releases this process's handles, after which pinned maps and port
// attachments keep forwarding with the cached megaflows until the next
// Open adopts them; Destroy detaches and unpins everything.
//
// The datapath holds megaflows only in the narrow key (see
// bpf/include/key.h): a megaflow whose mask would need an IPv6 address,
// neighbour-discovery field, ct_label or tunnel id cannot be cached, and
// such packets stay in the slow path.
package datapath
