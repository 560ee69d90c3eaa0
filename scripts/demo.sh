#!/usr/bin/env bash
# The ovsbpf demo: brings up a real OVN control plane (ovsdb-server and
# ovn-northd from Debian's ovn-central), a topology of two logical switches
# joined by a router with an ACL and a load balancer, and three VMs as
# network namespaces; then traces packets through it with ovsbpfctl, beside
# ovn-trace on the same Southbound database.
#
# The eBPF datapath that will forward the VMs' traffic is not built yet, so
# for now the demo traces instead of sending; the namespaces show the VMs'
# addresses. Everything it creates is removed when it exits.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH
cd "$(dirname "$0")/.."

ctl=${OVSBPFCTL:-bin/ovsbpfctl}
[[ -x $ctl ]] || go build -o bin/ ./cmd/ovsbpfctl
dir=$(mktemp -d /tmp/ovsbpf-demo.XXXXXX)
pids=()
netns=()
cleanup() {
	for ns in "${netns[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Starting an OVN central node in $dir"
for db in nb sb; do
	schema=/usr/share/ovn/ovn-$db.ovsschema
	ovsdb-tool create "$dir/$db.db" "$schema"
	ovsdb-server --remote="punix:$dir/$db.sock" --unixctl="$dir/$db.ctl" --log-file="$dir/$db.log" \
		--no-chdir "$dir/$db.db" 2>>"$dir/$db.err" &
	pids+=($!)
done
for _ in $(seq 100); do
	ovsdb-client --timeout=1 list-dbs "unix:$dir/sb.sock" >/dev/null 2>&1 && break
	sleep 0.05
done
ovn-northd --ovnnb-db="unix:$dir/nb.sock" --ovnsb-db="unix:$dir/sb.sock" --unixctl="$dir/northd.ctl" \
	--log-file="$dir/northd.log" --no-chdir 2>>"$dir/northd.err" &
pids+=($!)
export OVN_NB_DB=unix:$dir/nb.sock OVN_SB_DB=unix:$dir/sb.sock
nb() { ovn-nbctl --timeout=30 "$@"; }

say "Building the topology: vm1, vm2 on sw0 (10.0.0.0/24), vm3 on sw1 (10.0.1.0/24), router lr0"
nb ls-add sw0 -- ls-add sw1 -- lr-add lr0
nb lrp-add lr0 lr0-sw0 00:00:00:00:ff:01 10.0.0.1/24 -- lrp-add lr0 lr0-sw1 00:00:00:00:ff:02 10.0.1.1/24
for s in 0 1; do
	nb lsp-add sw$s sw$s-lr0 -- lsp-set-type sw$s-lr0 router -- lsp-set-addresses sw$s-lr0 router \
		-- lsp-set-options sw$s-lr0 router-port=lr0-sw$s
done
declare -A vm=([vm1]="sw0 00:00:00:00:00:11 10.0.0.11" [vm2]="sw0 00:00:00:00:00:12 10.0.0.12" [vm3]="sw1 00:00:00:00:01:13 10.0.1.13")
for v in vm1 vm2 vm3; do
	read -r sw mac ip <<<"${vm[$v]}"
	nb lsp-add "$sw" "$v" -- lsp-set-addresses "$v" "$mac $ip" -- lsp-set-port-security "$v" "$mac $ip"
done
nb pg-add web vm3 -- acl-add web to-lport 1002 'outport == @web && tcp.dst == 80' allow-related \
	-- acl-add web to-lport 1001 'outport == @web && ip4' drop
nb lb-add lb0 10.0.0.100:80 10.0.1.13:80 tcp -- ls-lb-add sw0 lb0
nb --wait=sb sync
echo "ovn-northd wrote $(ovn-sbctl --bare --columns=_uuid list Logical_Flow | grep -c .) logical flows"

if [[ $EUID -eq 0 ]]; then
	say "The VMs, as network namespaces (their datapath side is not attached yet)"
	for v in vm1 vm2 vm3; do
		read -r sw mac ip <<<"${vm[$v]}"
		ns=ovsbpf-demo-$v
		ip netns add "$ns"
		netns+=("$ns")
		ip link add "d-$v" type veth peer name eth0 netns "$ns"
		ip -n "$ns" link set eth0 address "$mac" up
		ip -n "$ns" addr add "$ip/24" dev eth0
		gw=${ip%.*}.1
		ip -n "$ns" route add default via "$gw"
		echo "$v: netns $ns, eth0 $mac $ip/24, gateway $gw, logical port of $sw"
		ip link del "d-$v" # the host side would be attached by ovsbpfd
	done
else
	say "Not root: skipping the network namespaces"
fi

ok=0 total=0
trace() { # title, extra args..., datapath, microflow
	local title=$1
	shift
	say "$title"
	echo "\$ ovsbpfctl trace --minimal ${*:1:$(($# - 1))} '${!#}'"
	local mine theirs
	mine=$("$ctl" trace --db "$OVN_SB_DB" --minimal "$@")
	theirs=$(ovn-trace --db "$OVN_SB_DB" --minimal "$@")
	sed 1d <<<"$mine"
	total=$((total + 1))
	if [[ "$(sed 1d <<<"$mine")" == "$(sed 1d <<<"$theirs" | sed 's/^\(.*\)$/\1/')" ]]; then
		ok=$((ok + 1))
		echo "   -> same as ovn-trace"
	else
		echo "   -> ovn-trace says:"
		sed 1d <<<"$theirs"
	fi
}

trace "vm1 pings vm2 on the same switch" sw0 \
	'inport == "vm1" && eth.src == 00:00:00:00:00:11 && eth.dst == 00:00:00:00:00:12 && ip4.src == 10.0.0.11 && ip4.dst == 10.0.0.12 && ip.ttl == 64 && icmp4.type == 8'
trace "vm1 asks who has its gateway (the router answers)" sw0 \
	'inport == "vm1" && eth.src == 00:00:00:00:00:11 && eth.dst == ff:ff:ff:ff:ff:ff && arp.op == 1 && arp.sha == 00:00:00:00:00:11 && arp.spa == 10.0.0.11 && arp.tpa == 10.0.0.1'
trace "vm1 reaches vm3's web server through the router (a new connection)" --ct new --ct new sw0 \
	'inport == "vm1" && eth.src == 00:00:00:00:00:11 && eth.dst == 00:00:00:00:ff:01 && ip4.src == 10.0.0.11 && ip4.dst == 10.0.1.13 && ip.ttl == 64 && tcp.dst == 80'
trace "vm1 tries ssh to vm3: the ACL drops it" --ct new --ct new sw0 \
	'inport == "vm1" && eth.src == 00:00:00:00:00:11 && eth.dst == 00:00:00:00:ff:01 && ip4.src == 10.0.0.11 && ip4.dst == 10.0.1.13 && ip.ttl == 64 && tcp.dst == 22'
trace "vm2 uses the load balancer VIP 10.0.0.100:80" --ct new --lb-dst 10.0.1.13:80 sw0 \
	'inport == "vm2" && eth.src == 00:00:00:00:00:12 && eth.dst == 00:00:00:00:ff:01 && ip4.src == 10.0.0.12 && ip4.dst == 10.0.0.100 && ip.ttl == 64 && tcp.dst == 80'
trace "vm1 spoofs its source address: port security drops it" sw0 \
	'inport == "vm1" && eth.src == 00:00:00:00:00:11 && eth.dst == 00:00:00:00:00:12 && ip4.src == 10.0.0.99 && ip4.dst == 10.0.0.12 && ip.ttl == 64 && icmp4.type == 8'
trace "a packet with TTL 1 through the router: ICMP time exceeded back to vm1" sw0 \
	'inport == "vm1" && eth.src == 00:00:00:00:00:11 && eth.dst == 00:00:00:00:ff:01 && ip4.src == 10.0.0.11 && ip4.dst == 10.0.1.13 && ip.ttl == 1 && icmp4.type == 8'

say "$ok of $total traces agree with ovn-trace"
"$ctl" lflow check --db "$OVN_SB_DB"
[[ $ok -eq $total ]]
