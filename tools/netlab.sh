#!/bin/sh
# netlab.sh: a two-host lab on one machine for splitd's offload tests.
#
#   netlab.sh up RATE_MBIT [CPU_FRACTION]   create (or re-shape) the lab
#   netlab.sh rate RATE_MBIT                change the link rate while running
#   netlab.sh cpu CPU_FRACTION              change the robot's CPU quota
#   netlab.sh exec-robot CMD...             run CMD as the robot: its netns, its CPU quota
#   netlab.sh exec-peer CMD...              run CMD as the peer: its netns, no quota
#   netlab.sh status                        show addresses, qdiscs, quota
#   netlab.sh down                          remove everything (idempotent)
#
# Layout: namespaces NAME-robot (veth nlr0, 10.77.0.1/30) and NAME-peer
# (veth nlp0, 10.77.0.2/30) joined by one veth pair. Both directions are
# shaped by a tbf qdisc on the sending side's veth, at the same rate.
#
# tbf parameters, for 20-400 Mbit/s:
#   burst = max(1 ms of the rate, 4500 B). The bucket must hold at least one
#           full-size frame plus change, and enough tokens that the qdisc
#           watchdog's wake-ups (hrtimer, tens of microseconds late) do not
#           cap the rate; 1 ms of the rate is 2.5 KB at 20 Mbit/s and 50 KB at
#           400 Mbit/s. A larger bucket lets the start of every transfer leave
#           at veth speed: with 1 ms the timing error on one transfer is at
#           most 1 ms, which is what the protocol-overhead figures need.
#   latency 100 ms (queue bound): TCP on the sender fills the queue while the
#           bucket drains; drops would be counted as congestion and cut the
#           goodput below the rate. 100 ms of queue never fills with one
#           request in flight (a resnet18 f32 cut of 800 KB is 16 ms at
#           400 Mbit/s), so the link runs at its rate and RTT probes on an
#           idle link see no queue.
#   mtu 1500 on the veth (its default is 1500 too); GSO super-packets larger
#           than the bucket are segmented by tbf itself.
#
# CPU: a cgroup v1 group /sys/fs/cgroup/cpu/NAME-robot with
#   cfs_period_us = 10000 and cfs_quota_us = FRACTION x period. A short period
#   (10 ms instead of the default 100 ms) makes the quota look like a slower
#   CPU instead of a fast CPU that stops for 87 ms of every 100 ms; the
#   kernel's minimum quota is 1 ms, so FRACTION >= 0.1 at this period. 1/8
#   (0.125) is 1.25 ms per 10 ms. FRACTION 1 = one full core.
#
# Must run as root. Every step is idempotent: `up` first removes what a
# previous lab left, and a failed `up` removes what it made.
set -eu

# SPLITD_NETLAB names the lab (default splitd): its namespaces and cgroup are
# NAME-robot and NAME-peer, so two labs (two test runs on one machine) do not
# tear down each other's. The test harness (bench/split_grid.py) picks a name
# of its own per run.
LAB=${SPLITD_NETLAB:-splitd}
case $LAB in
*[!A-Za-z0-9_-]* | "") echo "netlab: bad SPLITD_NETLAB '$LAB'" >&2; exit 1 ;;
esac
NS_R=$LAB-robot
NS_P=$LAB-peer
IF_R=nlr0
IF_P=nlp0
IP_R=10.77.0.1
IP_P=10.77.0.2
CG=/sys/fs/cgroup/cpu/$LAB-robot
PERIOD_US=10000

die() {
	echo "netlab: $*" >&2
	exit 1
}

need_root() {
	[ "$(id -u)" = 0 ] || die "must run as root"
}

# rate in Mbit/s (may be fractional) -> tbf args
tbf_args() {
	awk -v r="$1" 'BEGIN {
		if (r + 0 <= 0) exit 1
		bytes_per_ms = r * 1e6 / 8 / 1000
		burst = bytes_per_ms > 4500 ? int(bytes_per_ms) : 4500
		printf "rate %dkbit burst %d latency 100ms\n", r * 1000, burst
	}' || die "bad rate '$1' (Mbit/s, > 0)"
}

set_rate() {
	args=$(tbf_args "$1")
	# shellcheck disable=SC2086
	ip -n "$NS_R" link show "$IF_R" >/dev/null 2>&1 || die "lab is not up"
	tc -n "$NS_R" qdisc replace dev "$IF_R" root tbf $args
	tc -n "$NS_P" qdisc replace dev "$IF_P" root tbf $args
}

quota_us() {
	awk -v f="$1" -v p="$PERIOD_US" 'BEGIN {
		if (f + 0 <= 0 || f + 0 > 64) exit 1
		q = int(f * p + 0.5)
		if (q < 1000) exit 2
		print q
	}' || die "bad CPU fraction '$1' (> 0, and >= 0.1: the kernel's least quota is 1 ms per $PERIOD_US us)"
}

set_cpu() {
	q=$(quota_us "$1")
	[ -d "$CG" ] || mkdir "$CG"
	# shrinking the period below the quota is refused: lift the quota first
	echo -1 >"$CG/cpu.cfs_quota_us"
	echo "$PERIOD_US" >"$CG/cpu.cfs_period_us"
	echo "$q" >"$CG/cpu.cfs_quota_us"
}

down() {
	ip netns del "$NS_R" 2>/dev/null || true
	ip netns del "$NS_P" 2>/dev/null || true
	if [ -d "$CG" ]; then
		# move stragglers out (they keep running, unlimited), then remove
		for pid in $(cat "$CG/cgroup.procs" 2>/dev/null); do
			echo "$pid" >/sys/fs/cgroup/cpu/cgroup.procs 2>/dev/null || true
		done
		rmdir "$CG" 2>/dev/null || true
	fi
	[ ! -d "$CG" ] || die "could not remove $CG"
}

up() {
	rate=$1
	frac=${2:-1}
	tbf_args "$rate" >/dev/null
	quota_us "$frac" >/dev/null
	down
	trap 'down; exit 1' EXIT
	ip netns add "$NS_R"
	ip netns add "$NS_P"
	ip -n "$NS_R" link add "$IF_R" type veth peer name "$IF_P" netns "$NS_P"
	ip -n "$NS_R" addr add "$IP_R/30" dev "$IF_R"
	ip -n "$NS_P" addr add "$IP_P/30" dev "$IF_P"
	for ns in "$NS_R" "$NS_P"; do
		ip -n "$ns" link set lo up
	done
	ip -n "$NS_R" link set "$IF_R" mtu 1500 up
	ip -n "$NS_P" link set "$IF_P" mtu 1500 up
	set_rate "$rate"
	set_cpu "$frac"
	ip -n "$NS_R" route get "$IP_P" >/dev/null || die "no route $IP_R -> $IP_P"
	trap - EXIT
}

status() {
	for ns in "$NS_R" "$NS_P"; do
		echo "== $ns"
		ip -n "$ns" -br addr 2>/dev/null || echo "(absent)"
		tc -n "$ns" qdisc show 2>/dev/null | grep tbf || true
	done
	if [ -d "$CG" ]; then
		echo "== cgroup $CG: quota $(cat "$CG/cpu.cfs_quota_us") us / period $(cat "$CG/cpu.cfs_period_us") us; procs: $(tr '\n' ' ' <"$CG/cgroup.procs")"
	fi
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
up)
	need_root
	[ $# -ge 1 ] || die "usage: netlab.sh up RATE_MBIT [CPU_FRACTION]"
	up "$@"
	;;
rate)
	need_root
	[ $# -eq 1 ] || die "usage: netlab.sh rate RATE_MBIT"
	set_rate "$1"
	;;
cpu)
	need_root
	[ $# -eq 1 ] || die "usage: netlab.sh cpu CPU_FRACTION"
	[ -d "$CG" ] || die "lab is not up"
	set_cpu "$1"
	;;
exec-robot)
	[ $# -ge 1 ] || die "usage: netlab.sh exec-robot CMD..."
	[ -d "$CG" ] || die "lab is not up"
	# join the cgroup first (ip netns exec remounts /sys, hiding the cgroup
	# tree), then the namespace; exec keeps the pid, children inherit both
	echo $$ >"$CG/cgroup.procs"
	exec ip netns exec "$NS_R" "$@"
	;;
exec-peer)
	[ $# -ge 1 ] || die "usage: netlab.sh exec-peer CMD..."
	exec ip netns exec "$NS_P" "$@"
	;;
status)
	status
	;;
down)
	need_root
	down
	;;
*)
	die "usage: netlab.sh up RATE_MBIT [CPU_FRACTION] | rate RATE_MBIT | cpu FRACTION | exec-robot CMD... | exec-peer CMD... | status | down"
	;;
esac
