// Package upcall is the slow path. A pool of handlers takes turns reading
// the datapath's upcall ring; each runs the missed packet it read
// through a Pipeline (flowxlate's interpreter behind an adapter), turns the
// pipeline's outputs into datapath actions, installs the megaflow with the
// mask the pipeline reported, and delivers the packet with the datapath's
// own executor, so it leaves exactly as a cache hit would send it.
//
// The revalidator deletes idle megaflows, keeps their number under the
// flow limit, and, whenever the pipeline changes, asks it again about
// every cached megaflow: one whose decision changed is rewritten or
// deleted, so a cached flow never forwards what the pipeline would drop.
// Until the pipeline is loaded (Process answers ErrNotReady) it judges no
// flow: a restarted daemon keeps the megaflows pinned by its predecessor,
// and checks them once the first full pipeline is built.
//
// One value owns the megaflows: the datapath's flow table and the ukeys,
// what the slow path remembers of each megaflow. Handlers install through
// it; the revalidator and Slowpath.DeleteFlows (dpctl/del-flows) delete
// through it. The table is reached through the FlowTable interface, so the
// revalidator is tested without a kernel.
//
// The package knows nothing of OVN: logical ports and datapaths stay on
// the other side of the Pipeline interface.
package upcall
