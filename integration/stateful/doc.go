// Package stateful runs one stateful OVN scenario (allow-related ACLs with
// port groups and address sets in both directions, a switch load balancer
// with three backends, a router load balancer, a gateway router with SNAT
// and DNAT, hairpin to a VIP) with real traffic through network namespaces,
// against any chassis implementation, and records a verdict per connection.
//
// The scenario is written once against the Chassis interface
// (scenario_test.go); each implementation gets its own OVN central
// (ovntest.Env) fed identical Northbound commands, so implementations can
// run side by side in one test and their verdicts and normalised
// conntrack tables can be compared. stock_test.go runs it on a stock OVN
// chassis (internal/stockchassis: ovn-controller and ovs-vswitchd's
// userspace datapath) and asserts the expected verdicts, which are the
// reference ovsbpfd is held to.
package stateful
