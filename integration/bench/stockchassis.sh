#!/usr/bin/env bash
# The peer of make bench-flowxlate: a stock OVN chassis (ovn-controller and
# ovs-vswitchd) on a given Southbound, measured as it turns every logical
# flow into OpenFlow flows.
#
#	stockchassis.sh SB_REMOTE LPORT...
#
# Binds each LPORT (give one VIF of every logical switch, so that every
# logical datapath is local to the chassis and ovn-controller translates
# every logical flow) to a dummy interface on br-int: ovs-vswitchd runs with
# its dummy datapath (--enable-dummy=override), so no kernel device or
# module is involved. ovn-controller's logical flow cache is off
# (ovn-enable-lflow-cache=false), so that a recompute parses and compiles
# every logical flow again instead of replaying cached results.
#
# Prints "name value" lines on stdout, progress on stderr:
#   ovn_controller_start_s          wall seconds from start to a stable OpenFlow table
#                                   (see settle: SB_PID is the Southbound server's pid)
#   ovn_controller_flows            OpenFlow flows in br-int once stable
#   ovn_controller_rss_mb           resident set of ovn-controller then
#   ovs_vswitchd_rss_mb             resident set of ovs-vswitchd then
#   ovn_chassis_rss_mb              the sum of the two
#   ovn_controller_recompute_cpu_s_runN
#                                   CPU seconds (user + system, all threads,
#                                   from /proc/PID/stat) ovn-controller spends
#                                   on one `ovn-appctl recompute`, until it is
#                                   idle again
#   ovn_controller_recompute_cpu_s  the median of RECOMPUTES (default 3) runs
#
# Every daemon is a child of this script, with OVS_RUNDIR, OVN_RUNDIR and
# the logs in a fresh directory; all are killed and the directory removed
# on exit, on failure too (KEEP_DIR=1 keeps the directory).
set -euo pipefail

RECOMPUTES=${RECOMPUTES:-3}
SETTLE_TIMEOUT=${SETTLE_TIMEOUT:-900} # seconds to wait for the first full table

log() { echo "stockchassis: $*" >&2; }
die() { log "$*"; exit 1; }

(($# >= 2)) || die "usage: $0 SB_REMOTE LPORT..."
sb=$1
shift
for p in ovsdb-server ovsdb-tool ovs-vsctl ovs-vswitchd ovs-ofctl ovn-controller ovn-appctl; do
	command -v "$p" >/dev/null || die "$p not found: run scripts/setup.sh"
done

dir=$(mktemp -d "${TMPDIR:-/tmp}/ovsbpf-stockchassis.XXXXXX")
export OVS_RUNDIR=$dir OVS_LOGDIR=$dir OVS_DBDIR=$dir OVN_RUNDIR=$dir OVN_LOGDIR=$dir OVN_DBDIR=$dir
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	if [[ -n ${KEEP_DIR:-} ]]; then log "kept $dir"; else rm -rf "$dir"; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP # through cleanup

hz=$(getconf CLK_TCK)
# cpu_ticks PID: user + system clock ticks of every thread of PID so far.
cpu_ticks() {
	local stat
	stat=$(<"/proc/$1/stat")
	# The command name, in parentheses, may hold spaces: fields are counted
	# after its closing parenthesis, where field 3 (state) comes first, so
	# utime (14) and stime (15) are the 12th and 13th.
	read -r -a f <<<"${stat##*) }"
	echo $((f[11] + f[12]))
}
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
flows() {
	ovs-ofctl dump-aggregate "unix:$dir/br-int.mgmt" 2>/dev/null | sed -n 's/.*flow_count=\([0-9]*\).*/\1/p'
}

vs() { ovs-vsctl --db="unix:$dir/db.sock" --timeout=120 "$@"; }

ovsdb-tool create "$dir/conf.db" /usr/share/openvswitch/vswitch.ovsschema
ovsdb-server --remote="punix:$dir/db.sock" --unixctl="$dir/ovsdb-server.ctl" --log-file="$dir/ovsdb-server.log" \
	--no-chdir "$dir/conf.db" 2>>"$dir/ovsdb-server.err" &
pids+=($!)
for _ in $(seq 200); do [[ -S $dir/db.sock ]] && break; sleep 0.05; done
vs --no-wait init
ovs-vswitchd "unix:$dir/db.sock" --enable-dummy=override --unixctl="$dir/ovs-vswitchd.ctl" \
	--log-file="$dir/ovs-vswitchd.log" --no-chdir 2>>"$dir/ovs-vswitchd.err" &
vswitchd=$!
pids+=($vswitchd)
vs add-br br-int -- set Bridge br-int datapath_type=dummy fail-mode=secure
vs set Open_vSwitch . external_ids:system-id=stock-chassis external_ids:ovn-remote="$sb" \
	external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip=127.0.0.1 external_ids:ovn-enable-lflow-cache=false
ports=()
i=0
for lport in "$@"; do
	i=$((i + 1))
	ports+=(-- add-port br-int "vif$i" -- set Interface "vif$i" type=dummy external_ids:iface-id="$lport")
done
vs "${ports[@]}"
log "br-int has $i dummy VIFs; starting ovn-controller on $sb"

start=$(date +%s.%N)
ovn-controller "unix:$dir/db.sock" --log-file="$dir/ovn-controller.log" --no-chdir 2>>"$dir/ovn-controller.err" &
controller=$!
pids+=($controller)
ctl=$dir/ovn-controller.$controller.ctl

# settle waits until ovn-controller has worked since it had used $1 ticks,
# and is done: it and the Southbound's ovsdb-server (SB_PID, if given) were
# idle (no CPU tick) for QUIET_S seconds, twice, and br-int held the same
# number of flows after each. Idle ovn-controller alone is not enough: at
# start it claims the ports and then waits, idle, while the Southbound
# server computes the monitor update that brings the local datapaths'
# logical flows, and a table read then holds a fraction of the flows.
# ovs-vswitchd is not watched: counting a million flows (ovs-ofctl
# dump-aggregate) is work for it, so it is read only after a quiet spell.
# Sets settled_flows.
QUIET_S=${QUIET_S:-2}
settle() {
	local since=$1 deadline=$((SECONDS + $2)) last=-1 quiet=0 t n=-1 prev=-1 p now report=$((SECONDS + 10))
	while ((SECONDS < deadline)); do
		kill -0 "$controller" 2>/dev/null || die "ovn-controller exited: $(tail -5 "$dir/ovn-controller.log")"
		t=$(cpu_ticks "$controller")
		now=$t
		for p in ${SB_PID:-}; do now+=" $(cpu_ticks "$p")"; done
		if ((t > since)) && [[ $now == "$last" ]]; then
			quiet=$((quiet + 1))
			if ((quiet >= QUIET_S * 5)); then
				n=$(flows)
				if [[ -n $n && $n -gt 0 && $n == "$prev" ]]; then
					settled_flows=$n
					return
				fi
				prev=$n quiet=0
			fi
		else
			quiet=0
		fi
		if ((SECONDS >= report)); then
			log "waiting for ovn-controller to finish: at $(echo "$t / $hz" | bc) CPU s, $prev flows at the last quiet spell"
			report=$((SECONDS + 10))
		fi
		last=$now
		sleep 0.2
	done
	die "ovn-controller did not settle within $2 s (flows $n); log: $(tail -5 "$dir/ovn-controller.log")"
}

settle 0 "$SETTLE_TIMEOUT"
printf 'ovn_controller_start_s %.2f\n' "$(echo "$(date +%s.%N) - $start - 2 * $QUIET_S" | bc -l)"
echo "ovn_controller_flows $settled_flows"
initial_flows=$settled_flows
c=$(rss_mb "$controller") v=$(rss_mb "$vswitchd")
echo "ovn_controller_rss_mb $c"
echo "ovs_vswitchd_rss_mb $v"
printf 'ovn_chassis_rss_mb %.1f\n' "$(echo "$c + $v" | bc -l)"

ovn-appctl -t "$ctl" stopwatch/reset >/dev/null 2>&1 || true
runs=()
for r in $(seq "$RECOMPUTES"); do
	t0=$(cpu_ticks "$controller")
	ovn-appctl -t "$ctl" recompute >/dev/null
	settle "$t0" 300
	# The idle seconds that settle waits for cost no ticks, so this is the
	# recompute alone (and sending any changed flows to ovs-vswitchd).
	t1=$(cpu_ticks "$controller")
	s=$(echo "($t1 - $t0) / $hz" | bc -l)
	runs+=("$s")
	printf 'ovn_controller_recompute_cpu_s_run%d %.2f\n' "$r" "$s"
	[[ $settled_flows == "$initial_flows" ]] ||
		log "recompute $r changed br-int's flow count from $initial_flows to $settled_flows"
done
# ovn-controller's own stopwatches over the recomputes (wall time, reset
# before them), for the record: flow-generation is logical flows to
# OpenFlow, flow-installation the changes sent to ovs-vswitchd.
ovn-appctl -t "$ctl" stopwatch/show 2>/dev/null | awk '/^Statistics for/ { name = $3 } /Maximum/ { print "stockchassis: stopwatch " name " maximum " $2, $3 }' >&2 || true
median=$(printf '%s\n' "${runs[@]}" | sort -g | sed -n "$(((${#runs[@]} + 1) / 2))p")
printf 'ovn_controller_recompute_cpu_s %.2f\n' "$median"
