#!/bin/bash
# make bench-datapath: the eBPF datapath measured beside its peers, in one run.
#
# Prints one "name value" line per figure:
#   - per-packet cost under BPF_PROG_TEST_RUN (64-byte frames) beside an empty
#     program: empty_prog_ns, cache_hit_{1,8,32}mask_ns, tss_{1,8,32}mask_ns
#     and each as a multiple of the empty program (*_x_empty);
#     hit_100k_flows_ns (100,000 TCP 5-tuples cycling through the megaflows of
#     a switch with ACLs, past the exact-match cache, once the revalidator has
#     ranked the masks; see integration/datapathbench/scale.go) and its
#     multiple of the empty program, and the same with the masks in the worst
#     order (hit_100k_flows_worst_order_*);
#   - a broadcast cached to 64 ports: flood_64port_ns, beside the same frame
#     cached to one port (cache_hit_1port_ns) and the cost of each further
#     output (flood_per_output_ns), the 63 clones sent for real out of veths
#     in a namespace of their own;
#   - VM to VM through ovsbpf, a Linux bridge and Open vSwitch's userspace
#     datapath (netdev), on the same topology, built here: tcp_gbps_* (median of
#     three 3-second iperf3 runs) and rtt_us_* (mean of 200 pings), with
#     ovsbpf's ratios to the peers;
#   - the slow path on a running ovsbpfd: upcall_p50_us and upcall_p99_us
#     (handler latency, miss to megaflow installed and packet sent, over 3,000
#     new flows paced at 1,000/s), its parts (upcall_{wait,decide,install}_*),
#     and upcalls_per_s (a burst of 20,000 new flows); then the same latency
#     with a handler busy-polling the ring (upcall_busypoll_*);
#   - the machine's own noise under those tails (cpu_stalls_*): how often a
#     thread that never sleeps loses its CPU for more than 20, 50, 100 us.
#
# Everything runs in network namespaces this script creates (a chassis and two
# VMs) and on unix sockets; it deletes them on exit, whatever happens. Root.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then echo "bench-datapath needs root (eBPF, network namespaces)" >&2; exit 1; fi
for p in ovsdb-server ovsdb-tool ovs-vsctl ovs-vswitchd ovn-northd ovn-nbctl iperf3 ping ethtool; do
	command -v "$p" >/dev/null || { echo "$p missing: run scripts/setup.sh" >&2; exit 1; }
done

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
D=$(mktemp -d /tmp/ovsbpf-bench.XXXXXX)
CH=obb-ch
VM1=obb-vm1
VM2=obb-vm2
FL=obb-flood

cleanup() {
	set +e
	for f in "$D"/*.pid; do [ -f "$f" ] && kill "$(cat "$f")" 2>/dev/null; done
	sleep 0.3
	for f in "$D"/*.pid; do [ -f "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null; done
	for ns in $CH $VM1 $VM2 $FL; do ip netns del $ns 2>/dev/null; done
	rm -rf "$D"
}
trap cleanup EXIT
cleanup >/dev/null 2>&1 || true
mkdir -p "$D"

echo "# building" >&2
(cd "$ROOT" && go build -o "$D/ovsbpfd" ./cmd/ovsbpfd && go build -o "$D/datapathbench" ./integration/datapathbench)

echo "# per-packet cost (BPF_PROG_TEST_RUN)" >&2
"$D/datapathbench" -mode micro

echo "# a broadcast cached to 64 ports (BPF_PROG_TEST_RUN, clones sent out of veths)" >&2
ip netns add $FL
ip netns exec $FL sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n $FL link set lo up
for i in $(seq 64); do echo "link add f$i type veth peer name g$i"; echo "link set f$i up"; echo "link set g$i up"; done | ip -n $FL -batch -
ip netns exec $FL "$D/datapathbench" -mode flood
ip netns del $FL

# --- topology: a chassis namespace, two VMs on veth pairs --------------------
ip netns add $CH
ip -n $CH link set lo up
for i in 1 2; do
	vm=obb-vm$i
	ip netns add $vm
	ip netns exec $vm sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n $CH link add tap$i type veth peer name eth0 netns $vm
	ip -n $vm link set lo up
	ip -n $vm link set eth0 address 0a:00:00:00:77:0$i
	ip -n $vm addr add 10.77.0.$i/24 dev eth0
	ip -n $vm link set eth0 up
	ip -n $CH link set tap$i up
done

# measure NAME: TCP throughput and ping RTT from vm1 to vm2.
measure() {
	local name=$1
	ip netns exec $VM1 ping -c 3 -W 1 -q 10.77.0.2 >/dev/null || { echo "$name: vm1 cannot reach vm2" >&2; return 1; }
	local rtt
	rtt=$(ip netns exec $VM1 ping -c 200 -i 0.005 -q 10.77.0.2 | awk -F/ '/^rtt/ {print $5}')
	echo "rtt_us_$name $(echo "$rtt * 1000" | bc -l | xargs printf '%.1f')"
	# TCP: the median of three 3-second iperf3 runs, so one disturbed run
	# does not decide the figure.
	local runs=()
	for r in 1 2 3; do
		ip netns exec $VM2 iperf3 -s -1 -D --pidfile "$D/iperf-$name-$r.pid" >/dev/null
		sleep 0.3
		runs+=("$(ip netns exec $VM1 iperf3 -c 10.77.0.2 -t 3 -J |
			python3 -c 'import json,sys; j=json.load(sys.stdin); print("%.2f" % (j["end"]["sum_received"]["bits_per_second"]/1e9))')")
	done
	echo "tcp_gbps_$name $(printf '%s\n' "${runs[@]}" | sort -n | sed -n 2p)"
	echo "# $name tcp runs: ${runs[*]}" >&2
}

# --- Linux bridge ---------------------------------------------------------------
echo "# Linux bridge" >&2
ip -n $CH link add br0 type bridge
ip -n $CH link set br0 up
ip -n $CH link set tap1 master br0
ip -n $CH link set tap2 master br0
measure bridge | tee "$D/bridge.out"
ip -n $CH link del br0

# --- Open vSwitch, userspace datapath ------------------------------------------
echo "# Open vSwitch userspace datapath" >&2
O=$D/ovs
mkdir -p "$O"
ovsdb-tool create "$O/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server --remote=punix:"$O/db.sock" --pidfile="$D/ovs-db.pid" --unixctl="$O/db.ctl" --detach --no-chdir --log-file="$O/ovsdb.log" "$O/conf.db"
ovs-vsctl --db=unix:"$O/db.sock" --no-wait init
OVS_RUNDIR=$O OVS_LOGDIR=$O ip netns exec $CH ovs-vswitchd unix:"$O/db.sock" --pidfile="$D/ovs-vswitchd.pid" --detach --no-chdir --log-file="$O/vswitchd.log"
ovs-vsctl --db=unix:"$O/db.sock" add-br br0 -- set bridge br0 datapath_type=netdev
ovs-vsctl --db=unix:"$O/db.sock" add-port br0 tap1 -- add-port br0 tap2
# Over AF_PACKET, OVS's userspace datapath cannot complete checksums left to
# offload, so the VMs compute them (as ../shared/bench/peers.sh does).
for vm in $VM1 $VM2; do ip netns exec $vm ethtool -K eth0 tx off >/dev/null 2>&1; done
sleep 2
measure ovs | tee "$D/ovs.out"
kill "$(cat "$D/ovs-vswitchd.pid")" "$(cat "$D/ovs-db.pid")"
rm -f "$D/ovs-vswitchd.pid" "$D/ovs-db.pid"
for vm in $VM1 $VM2; do ip netns exec $vm ethtool -K eth0 tx on >/dev/null 2>&1; done
sleep 0.5

# --- ovsbpf on a real OVN control plane -----------------------------------------
echo "# ovsbpf" >&2
N=$D/ovn
mkdir -p "$N"
for db in nb sb; do
	schema=/usr/share/ovn/ovn-$db.ovsschema
	ovsdb-tool create "$N/$db.db" "$schema"
	ovsdb-server --remote=punix:"$N/$db.sock" --pidfile="$D/ovn-$db.pid" --unixctl="$N/$db.ctl" --detach --no-chdir --log-file="$N/$db.log" "$N/$db.db"
done
ovn-northd --ovnnb-db=unix:"$N/nb.sock" --ovnsb-db=unix:"$N/sb.sock" --pidfile="$D/northd.pid" --unixctl="$N/northd.ctl" --detach --no-chdir --log-file="$N/northd.log"
NB="ovn-nbctl --db=unix:$N/nb.sock"
$NB ls-add sw0
for i in 1 2; do
	$NB lsp-add sw0 vm$i
	$NB lsp-set-addresses vm$i "0a:00:00:00:77:0$i 10.77.0.$i"
done
$NB --wait=sb sync
ovsdb-tool create "$N/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server --remote=punix:"$N/conf.sock" --pidfile="$D/conf.pid" --unixctl="$N/conf.ctl" --detach --no-chdir --log-file="$N/conf.log" "$N/conf.db"
VS="ovs-vsctl --db=unix:$N/conf.sock --timeout=20"
$VS --no-wait init
$VS --no-wait set Open_vSwitch . external_ids:system-id=bench external_ids:ovn-remote=unix:"$N/sb.sock"
ip netns exec $CH "$D/ovsbpfd" --db=unix:"$N/conf.sock" --unixctl="$D/ovsbpfd.ctl" --pin-path=none --log-level=warn 2>"$D/ovsbpfd.log" &
echo $! >"$D/ovsbpfd.pid"
for _ in $(seq 100); do [ -S "$D/ovsbpfd.ctl" ] && break; sleep 0.05; done
$VS add-br br-int
$VS add-port br-int tap1 -- set Interface tap1 external_ids:iface-id=vm1
$VS add-port br-int tap2 -- set Interface tap2 external_ids:iface-id=vm2
measure ovsbpf | tee "$D/ovsbpf.out"

echo "# machine noise" >&2
"$D/datapathbench" -mode stalls

echo "# slow path" >&2
"$D/datapathbench" -mode upcalls -ctl "$D/ovsbpfd.ctl" -netns $VM1

# The same with a handler spinning for the next upcall (--upcall-busy-poll):
# a CPU spent for latency, reported beside the default rather than instead.
kill "$(cat "$D/ovsbpfd.pid")"; wait "$(cat "$D/ovsbpfd.pid")" 2>/dev/null || true
ip netns exec $CH "$D/ovsbpfd" --db=unix:"$N/conf.sock" --unixctl="$D/ovsbpfd.ctl" --pin-path=none --log-level=warn \
	--upcall-busy-poll=5ms 2>>"$D/ovsbpfd.log" &
echo $! >"$D/ovsbpfd.pid"
for _ in $(seq 100); do [ -S "$D/ovsbpfd.ctl" ] && ip netns exec $VM1 ping -c 1 -W 1 -q 10.77.0.2 >/dev/null 2>&1 && break; sleep 0.05; done
"$D/datapathbench" -mode upcalls -ctl "$D/ovsbpfd.ctl" -netns $VM1 -burst 0 | sed 's/^upcall_/upcall_busypoll_/'

value() { awk -v k="$1" '$1 == k {print $2}' "$D"/*.out; }
ratio() { echo "$1 $(echo "$2 / $3" | bc -l | xargs printf '%.2f')"; }
ratio tcp_ovsbpf_over_bridge "$(value tcp_gbps_ovsbpf)" "$(value tcp_gbps_bridge)"
ratio tcp_ovsbpf_over_ovs "$(value tcp_gbps_ovsbpf)" "$(value tcp_gbps_ovs)"
ratio rtt_ovsbpf_over_bridge "$(value rtt_us_ovsbpf)" "$(value rtt_us_bridge)"
ratio rtt_ovsbpf_over_ovs "$(value rtt_us_ovsbpf)" "$(value rtt_us_ovs)"
