// Package stateful runs one stateful OVN scenario (allow-related ACLs with
// port groups and an address set in both directions, a switch load
// balancer with three backends, a router load balancer, a gateway router
// with SNAT and DNAT, hairpin to a VIP) with real traffic through network
// namespaces, against any chassis implementation, and records a verdict per
// case. It is issue 8's differential against OVS's userspace conntrack,
// through OVN.
//
// The scenario is written once against the Chassis interface
// (scenario_test.go). Differential runs every implementation in a
// parallel subtest, each on its own OVN central (ovntest.Env) fed the same
// Northbound commands, holds each to the expected verdicts (stock_test.go)
// and logs the normalised conntrack tables (zones by name, ephemeral ports
// as *) and where they differ. TestStockChassis runs two stock chassis
// (internal/stockchassis: ovn-controller and ovs-vswitchd's userspace
// datapath) side by side; the expected verdicts are what they do.
//
// To add ovsbpfd, write a type with Chassis's four methods over its chassis
// (start ovsbpfd in a namespace with br-int, as integration/chassis does),
// a StartFunc that starts it on env.SBRemote(), and add it to the map:
//
//	Differential(t, map[string]StartFunc{"stock": startStock, "ovsbpfd": startOvsbpfd})
//
// Two things the topology teaches about OVN, which an implementation must
// reproduce: the VIPs lie outside every subnet, since nothing answers ARP
// for a switch load balancer's VIP; and after a connection's first packet
// the from-lport ACLs see the destination the load balancer chose, not the
// VIP (ct_lb_mark in ls_in_pre_stateful DNATs established packets before
// the ACL stage), so the hairpin rule names the backend port too.
//
// STATEFUL_CT_OUT=PATH also writes each implementation's normalised
// conntrack table to PATH.NAME, for diffing by hand.
package stateful
