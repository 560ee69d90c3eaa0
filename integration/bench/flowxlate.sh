#!/usr/bin/env bash
# make bench-flowxlate: build a large OVN topology, let a real ovn-northd
# compile it into a Southbound database, then measure how long ovsbpf takes
# to parse and compile that Logical_Flow table on one core, and how much
# memory that takes (integration/flowxlatebench).
#
# Prints "name value" lines on stdout; progress goes to stderr.
#
# Shape (override with the environment): SWITCHES logical switches of
# PORTS_PER_SWITCH VIF ports each ("MAC IP" addresses, port security on),
# one logical router with a port on every switch, one port group per switch
# holding its VIFs, and ACLS_PER_SWITCH ACLs on each port group: to-lport
# and from-lport, allow-related, allow and drop, on TCP and UDP ports, half
# of them using the next switch's $pgN_ip4 address set.
#
# The Northbound database is written with ovsdb-client, one transaction per
# switch and per batch of ACLs, before ovn-northd starts, so that northd
# compiles the whole topology once. (ovn-nbctl downloads the whole database
# on every run, and a running northd recomputes on every transaction; both
# grow with the database, which made the build minutes long.)
#
# The same run brings up the peer, a stock OVN chassis, on the same
# Southbound (integration/bench/stockchassis.sh, which documents its
# figures), and prints the ratios of the two: see the end of this script.
# PEER=0 leaves it out (quicker, e.g. for profiling).
#
# Every daemon runs as a child of this script with its sockets, pid file and
# logs in a fresh directory, which is removed on exit. Set KEEP_DIR=1 to
# keep it, KEEP_SNAPSHOT=FILE to keep the Southbound snapshot (JSON), and
# BENCH_ARGS to pass flags to the measurement (e.g. "-cpuprofile FILE").
set -euo pipefail
export PATH=/usr/local/go/bin:/usr/sbin:/sbin:$PATH

SWITCHES=${SWITCHES:-200}
PORTS_PER_SWITCH=${PORTS_PER_SWITCH:-50}
ACLS_PER_SWITCH=${ACLS_PER_SWITCH:-100}
ACLS_PER_TXN=100
PEER=${PEER:-1} # 0 leaves out the stock chassis

log() { echo "bench-flowxlate: $*" >&2; }
die() { log "$*"; exit 1; }

for p in ovsdb-server:openvswitch-common ovsdb-tool:openvswitch-common ovsdb-client:openvswitch-common \
	ovn-northd:ovn-central ovn-nbctl:ovn-common ovn-trace:ovn-common go:golang bc:bc; do
	command -v "${p%%:*}" >/dev/null || die "${p%%:*} not found: install ${p#*:} (scripts/setup.sh does)"
done
((SWITCHES >= 1 && SWITCHES <= 65536 && PORTS_PER_SWITCH >= 1 && PORTS_PER_SWITCH <= 253)) ||
	die "want 1..65536 switches of 1..253 ports"

root=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/ovsbpf-bench-flowxlate.XXXXXX")
pids=()
stop_daemons() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	pids=()
}
cleanup() {
	stop_daemons
	if [[ -n ${KEEP_DIR:-} ]]; then log "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP # through cleanup

start_db() { # name schema
	ovsdb-tool create "$dir/$1.db" "$2"
	ovsdb-server --remote="punix:$dir/$1.sock" --unixctl="$dir/$1.ctl" --pidfile="$dir/$1.pid" \
		--log-file="$dir/$1.log" --no-chdir "$dir/$1.db" 2>>"$dir/$1.err" &
	pids+=($!)
	local _
	for _ in $(seq 200); do
		ovsdb-client --timeout=1 list-dbs "unix:$dir/$1.sock" >/dev/null 2>&1 && return
		sleep 0.05
	done
	die "ovsdb-server $1 did not start: $(tail -5 "$dir/$1.log" "$dir/$1.err" 2>/dev/null)"
}

# nb_transact runs its arguments, JSON operations, as one transaction on
# the Northbound database.
nb_transact() {
	local ops out
	join ops "$@"
	out=$(ovsdb-client --timeout=120 transact "unix:$dir/nb.sock" "[\"OVN_Northbound\",$ops]")
	[[ $out != *'"error"'* ]] || die "Northbound transaction failed: ${out:0:1000}"
}

# acl sets op to the insert operation, named a$2, of ACL number $2 of
# switch $1. (Loops here use printf -v: a command substitution forks, and
# there are tens of thousands of rows.)
acl() { # s a
	local s=$1 a=$2 peer=$((($1 + 1) % SWITCHES)) port=$((1000 + $2 % 1000)) dir match action
	case $((a % 4)) in
	0) dir=to-lport match="outport == @pg$s && ip4.src == \$pg${peer}_ip4 && tcp.dst == $port" action=allow-related ;;
	1) dir=from-lport match="inport == @pg$s && ip4 && udp.dst == $port" action=drop ;;
	2) dir=to-lport match="outport == @pg$s && ip4.src == 192.168.$((a % 256)).0/24 && tcp.dst == $port" action=allow ;;
	3) dir=from-lport match="inport == @pg$s && ip4.dst == \$pg${peer}_ip4 && tcp.dst == $port" action=allow-related ;;
	esac
	printf -v op '{"op":"insert","table":"ACL","uuid-name":"a%d","row":{"direction":"%s","priority":%d,"match":"%s","action":"%s"}}' \
		"$a" "$dir" $((2000 + a % 30000)) "$match" "$action"
}

# join sets the variable named $1 to the other arguments joined with commas.
join() {
	local IFS=,
	printf -v "$1" '%s' "${*:2}"
}

build_nb() {
	nb_transact '{"op":"insert","table":"Logical_Router","row":{"name":"lr0"}}'
	local s p a hi lo mac ip op ops vifs acls list
	for ((s = 0; s < SWITCHES; s++)); do
		hi=$((s / 256)) lo=$((s % 256)) ops=() vifs=()
		printf -v op '{"op":"insert","table":"Logical_Router_Port","uuid-name":"lrp","row":{"name":"lrp%d","mac":"02:00:00:%02x:%02x:ff","networks":"10.%d.%d.254/24"}}' \
			"$s" "$hi" "$lo" "$hi" "$lo"
		ops+=("$op" '{"op":"mutate","table":"Logical_Router","where":[["name","==","lr0"]],"mutations":[["ports","insert",["named-uuid","lrp"]]]}')
		printf -v op '{"op":"insert","table":"Logical_Switch_Port","uuid-name":"rp","row":{"name":"ls%d-lr0","type":"router","addresses":"router","options":["map",[["router-port","lrp%d"]]]}}' \
			"$s" "$s"
		ops+=("$op")
		for ((p = 1; p <= PORTS_PER_SWITCH; p++)); do
			printf -v mac '0a:00:00:%02x:%02x:%02x' "$hi" "$lo" "$p"
			ip="10.$hi.$lo.$p"
			printf -v op '{"op":"insert","table":"Logical_Switch_Port","uuid-name":"p%d","row":{"name":"vm%d-%d","addresses":"%s %s","port_security":"%s %s"}}' \
				"$p" "$s" "$p" "$mac" "$ip" "$mac" "$ip"
			ops+=("$op")
			vifs+=("[\"named-uuid\",\"p$p\"]")
		done
		join list "${vifs[@]}"
		printf -v op '{"op":"insert","table":"Logical_Switch","row":{"name":"ls%d","ports":["set",[["named-uuid","rp"],%s]]}}' "$s" "$list"
		ops+=("$op")
		printf -v op '{"op":"insert","table":"Port_Group","row":{"name":"pg%d","ports":["set",[%s]]}}' "$s" "$list"
		ops+=("$op")
		nb_transact "${ops[@]}"
		for ((a = 0; a < ACLS_PER_SWITCH; a += ACLS_PER_TXN)); do
			ops=() acls=()
			for ((p = a; p < a + ACLS_PER_TXN && p < ACLS_PER_SWITCH; p++)); do
				acl "$s" "$p"
				ops+=("$op")
				acls+=("[\"named-uuid\",\"a$p\"]")
			done
			join list "${acls[@]}"
			printf -v op '{"op":"mutate","table":"Port_Group","where":[["name","==","pg%d"]],"mutations":[["acls","insert",["set",[%s]]]]}' "$s" "$list"
			ops+=("$op")
			nb_transact "${ops[@]}"
		done
	done
}

t0=$SECONDS
start_db nb /usr/share/ovn/ovn-nb.ovsschema
nb_pid=${pids[-1]}
start_db sb /usr/share/ovn/ovn-sb.ovsschema
sb_pid=${pids[-1]}
log "writing $SWITCHES switches x $PORTS_PER_SWITCH ports, one router, $((SWITCHES * ACLS_PER_SWITCH)) ACLs"
build_nb
log "Northbound written after $((SECONDS - t0))s; starting ovn-northd"
ovn-northd --ovnnb-db="unix:$dir/nb.sock" --ovnsb-db="unix:$dir/sb.sock" --unixctl="$dir/northd.ctl" \
	--pidfile="$dir/northd.pid" --log-file="$dir/northd.log" --no-chdir 2>>"$dir/northd.err" &
northd_pid=$!
pids+=($northd_pid)
ovn-nbctl --db="unix:$dir/nb.sock" --timeout=1800 --wait=sb sync
log "Southbound ready after $((SECONDS - t0))s"

echo "switches $SWITCHES"
echo "ports $((SWITCHES * PORTS_PER_SWITCH))"
echo "acls $((SWITCHES * ACLS_PER_SWITCH))"
echo "nb_build_s $((SECONDS - t0))"

cd "$root"
go build -o "$dir/flowxlatebench" ./integration/flowxlatebench
go build -o "$dir/ovsbpfctl" ./cmd/ovsbpfctl
snapshot=${KEEP_SNAPSHOT:-$dir/sb.json}
"$dir/flowxlatebench" -db "unix:$dir/sb.sock" -save "$snapshot" -measure=false

# Side by side with the peer: ovn-trace also reads the whole Southbound and
# parses every logical flow before it traces one packet. Time one trace with
# each tool on the same database, in this run, and check that they agree.
flow='inport == "vm0-1" && eth.src == 0a:00:00:00:00:01 && eth.dst == 0a:00:00:00:00:02 && ip4.src == 10.0.0.1 && ip4.dst == 10.0.0.2 && ip.ttl == 64 && tcp.dst == 1000'
wall() { # out cmd...: run cmd with stdout to out, print its wall seconds
	local out=$1 t
	shift
	t=$(date +%s.%N)
	"$@" >"$out"
	echo "$(date +%s.%N) - $t" | bc -l
}
mine=$(wall "$dir/mine.out" "$dir/ovsbpfctl" trace --db "unix:$dir/sb.sock" --minimal ls0 "$flow")
theirs=$(wall "$dir/theirs.out" ovn-trace --db="unix:$dir/sb.sock" --minimal ls0 "$flow")
printf 'trace_wall_s_ovsbpfctl %.3f\n' "$mine"
printf 'trace_wall_s_ovn_trace %.3f\n' "$theirs"
printf 'trace_wall_ratio_ovn_trace_over_ovsbpfctl %.2f\n' "$(echo "$theirs / $mine" | bc -l)"
if diff <(sed 1d "$dir/mine.out") <(sed 1d "$dir/theirs.out") >&2; then
	echo "trace_agrees 1"
else
	log "ovsbpfctl trace and ovn-trace differ (diff above)"
	echo "trace_agrees 0"
fi

# The peer, on the same Southbound: a stock chassis (ovn-controller and
# ovs-vswitchd, integration/bench/stockchassis.sh) with the first VIF of
# every logical switch bound to it, so that every logical datapath is local
# and ovn-controller translates every logical flow. ovn-northd and the
# Northbound stop first, so that nothing but the chassis' own claims changes
# the Southbound while it is measured.
if [[ $PEER == 1 ]]; then
	kill "$northd_pid" "$nb_pid"
	wait "$northd_pid" "$nb_pid" 2>/dev/null || true
	lports=()
	for ((s = 0; s < SWITCHES; s++)); do lports+=("vm$s-1"); done
	log "starting a stock chassis with ${#lports[@]} VIFs on the Southbound"
	# In the background, so that cleanup stops it (and it its daemons) if
	# this script is stopped; its directory is inside ours.
	SB_PID=$sb_pid TMPDIR=$dir "$root/integration/bench/stockchassis.sh" "unix:$dir/sb.sock" "${lports[@]}" >"$dir/peer.out" &
	peer_pid=$!
	pids+=($peer_pid)
	wait "$peer_pid" || die "the stock chassis failed (its progress is above)"
	cat "$dir/peer.out"
fi

# Stop the OVN daemons so that they do not compete for the two cores, then
# measure the translation itself.
stop_daemons
# shellcheck disable=SC2086 # BENCH_ARGS is a list of flags
"$dir/flowxlatebench" -snapshot "$snapshot" ${BENCH_ARGS:-} | tee "$dir/mine.figures"

# The ratios the issue sets targets for: translate_s (the median wall time
# of Translator.Load on one core, GOMAXPROCS=1) over the CPU seconds of one
# full recompute of ovn-controller (at most 0.5), and translate_peak_mb
# (the peak resident set of the translating process) over the stock
# chassis' resident set, ovn-controller plus ovs-vswitchd (at most 0.25).
if [[ $PEER == 1 ]]; then
	cat "$dir/peer.out" "$dir/mine.figures" | awk '
		function ratio(name, a, b) {
			# A tiny topology can recompute in less than a clock tick.
			if (v[b] > 0) printf "%s %.3f\n", name, v[a] / v[b]; else printf "%s nan\n", name
		}
		{ v[$1] = $2 }
		END {
			ratio("translate_s_over_ovn_controller_recompute_cpu_s", "translate_s", "ovn_controller_recompute_cpu_s")
			ratio("translate_cpu_s_over_ovn_controller_recompute_cpu_s", "translate_cpu_s", "ovn_controller_recompute_cpu_s")
			ratio("translate_peak_mb_over_ovn_chassis_rss_mb", "translate_peak_mb", "ovn_chassis_rss_mb")
		}'
fi
