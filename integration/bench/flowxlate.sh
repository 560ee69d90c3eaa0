#!/usr/bin/env bash
# make bench-flowxlate: build a large OVN topology with a real ovn-northd,
# then measure how long ovsbpf takes to parse and compile its Logical_Flow
# table on one core, and how much memory that takes.
#
# Prints "name value" lines on stdout; progress goes to stderr.
# Shape (override with the environment): SWITCHES switches of
# PORTS_PER_SWITCH ports each, all joined by one router, one port group per
# switch, and ACLS_PER_GROUP ACLs on each port group.
set -euo pipefail
export PATH=/usr/local/go/bin:$PATH

SWITCHES=${SWITCHES:-200}
PORTS_PER_SWITCH=${PORTS_PER_SWITCH:-50}
ACLS_PER_GROUP=${ACLS_PER_GROUP:-100}

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/ovsbpf-bench-flowxlate.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

log() { echo "bench-flowxlate: $*" >&2; }

start_db() { # name schema
	ovsdb-tool create "$dir/$1.db" "$2"
	ovsdb-server --remote="punix:$dir/$1.sock" --unixctl="$dir/$1.ctl" --log-file="$dir/$1.log" \
		--no-chdir "$dir/$1.db" 2>>"$dir/$1.err" &
	pids+=($!)
	for _ in $(seq 100); do
		ovsdb-client --timeout=1 list-dbs "unix:$dir/$1.sock" >/dev/null 2>&1 && return
		sleep 0.05
	done
	echo "ovsdb-server $1 did not start" >&2
	exit 1
}

start_db nb /usr/share/ovn/ovn-nb.ovsschema
start_db sb /usr/share/ovn/ovn-sb.ovsschema
ovn-northd --ovnnb-db="unix:$dir/nb.sock" --ovnsb-db="unix:$dir/sb.sock" --unixctl="$dir/northd.ctl" \
	--log-file="$dir/northd.log" --no-chdir 2>>"$dir/northd.err" &
pids+=($!)
nbctl() { ovn-nbctl --db="unix:$dir/nb.sock" --no-wait --timeout=600 "$@"; }

t0=$(date +%s)
log "building $SWITCHES switches x $PORTS_PER_SWITCH ports, one router, $((SWITCHES * ACLS_PER_GROUP)) ACLs"
nbctl lr-add lr0
for ((s = 0; s < SWITCHES; s++)); do
	hi=$((s / 256)) lo=$((s % 256))
	args=(ls-add "ls$s" -- lrp-add lr0 "lrp$s" "$(printf '02:00:00:%02x:%02x:ff' $hi $lo)" "10.$hi.$lo.254/24"
		-- lsp-add "ls$s" "ls$s-lr0" -- lsp-set-type "ls$s-lr0" router -- lsp-set-addresses "ls$s-lr0" router
		-- lsp-set-options "ls$s-lr0" "router-port=lrp$s" -- pg-add "pg$s")
	ports=()
	for ((p = 1; p <= PORTS_PER_SWITCH; p++)); do
		mac=$(printf '0a:00:00:%02x:%02x:%02x' $hi $lo $p)
		ip="10.$hi.$lo.$p"
		args+=(-- lsp-add "ls$s" "vm$s-$p" -- lsp-set-addresses "vm$s-$p" "$mac $ip"
			-- lsp-set-port-security "vm$s-$p" "$mac $ip")
		ports+=("vm$s-$p")
	done
	args+=(-- pg-set-ports "pg$s" "${ports[@]}")
	nbctl "${args[@]}"
done
log "switches done after $(($(date +%s) - t0))s; adding ACLs"
for ((s = 0; s < SWITCHES; s++)); do
	peer=$(((s + 1) % SWITCHES))
	args=()
	for ((a = 0; a < ACLS_PER_GROUP; a++)); do
		port=$((1000 + a))
		case $((a % 4)) in
		0) args+=(-- acl-add "pg$s" to-lport $((2000 + a)) "outport == @pg$s && ip4.src == \$pg${peer}_ip4 && tcp.dst == $port" allow-related) ;;
		1) args+=(-- acl-add "pg$s" from-lport $((2000 + a)) "inport == @pg$s && ip4 && udp.dst == $port" drop) ;;
		2) args+=(-- acl-add "pg$s" to-lport $((2000 + a)) "outport == @pg$s && ip4.src == 192.168.$((a % 256)).0/24 && tcp.dst == $port" allow) ;;
		3) args+=(-- acl-add "pg$s" from-lport $((2000 + a)) "inport == @pg$s && ip4.dst == \$pg${peer}_ip4 && tcp.dst == $port" allow-related) ;;
		esac
	done
	nbctl "${args[@]:1}"
done
log "NB written after $(($(date +%s) - t0))s; waiting for ovn-northd"
ovn-nbctl --db="unix:$dir/nb.sock" --timeout=1800 --wait=sb sync
log "southbound ready after $(($(date +%s) - t0))s"

echo "switches $SWITCHES"
echo "ports $((SWITCHES * PORTS_PER_SWITCH))"
echo "acls $((SWITCHES * ACLS_PER_GROUP))"
echo "nb_build_s $(($(date +%s) - t0))"
cd "$root"
go build -o "$dir/flowxlatebench" ./integration/flowxlatebench
go build -o "$dir/ovsbpfctl" ./cmd/ovsbpfctl
"$dir/flowxlatebench" -db "unix:$dir/sb.sock" -save "$dir/sb.gob"
[[ -z ${KEEP_SNAPSHOT:-} ]] || cp "$dir/sb.gob" "$KEEP_SNAPSHOT"

# Side by side with the peer: ovn-trace also reads the whole Southbound and
# parses every logical flow before it traces one packet. Time one trace with
# each tool on the same database, in this run.
flow='inport == "vm0-1" && eth.src == 0a:00:00:00:00:01 && eth.dst == 0a:00:00:00:00:02 && ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64 && tcp.dst == 1000'
wall() { local t0 t1; t0=$(date +%s.%N); "$@" >"$dir/trace.out"; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l; }
mine=$(wall "$dir/ovsbpfctl" trace --db "unix:$dir/sb.sock" --minimal ls0 "$flow")
cp "$dir/trace.out" "$dir/mine.out"
theirs=$(wall ovn-trace --db="unix:$dir/sb.sock" --minimal ls0 "$flow")
if ! diff <(sed 1d "$dir/mine.out") <(sed 1d "$dir/trace.out") >&2; then
	echo "bench-flowxlate: the traces differ" >&2
	exit 1
fi
printf 'trace_wall_s_ovsbpfctl %.3f\n' "$mine"
printf 'trace_wall_s_ovn_trace %.3f\n' "$theirs"
printf 'trace_wall_ratio_ovn_trace_over_ovsbpfctl %.2f\n' "$(echo "$theirs / $mine" | bc -l)"

# Stop the OVN daemons so that they do not compete for the two cores, then
# measure the translation itself.
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
"$dir/flowxlatebench" -snapshot "$dir/sb.gob" ${BENCH_ARGS:-}
