#!/bin/sh
# The shipped units: `systemd-analyze verify` prints nothing, and the
# service's `systemd-analyze security --offline=yes` exposure is at most 3.0.
# usage: systemd_units.sh SYSTEMD_DIR SPLITD_BINARY
set -eu
src=$1
bin=$2
command -v systemd-analyze >/dev/null || { echo "SKIP: no systemd-analyze"; exit 0; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# the units name /usr/bin/splitd; verify them against the binary just built
for u in splitd.service splitd-peer.service splitd.socket; do
	sed "s#/usr/bin/splitd#$bin#" "$src/$u" > "$tmp/$u"
done
out=$(cd "$tmp" && systemd-analyze verify splitd.service splitd-peer.service splitd.socket 2>&1) || true
if [ -n "$out" ]; then
	echo "systemd-analyze verify is not silent:"; echo "$out"; exit 1
fi
fail=0
for u in splitd.service splitd-peer.service; do
	level=$(systemd-analyze security --offline=yes --no-pager "$tmp/$u" 2>&1 |
		sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	echo "$u: exposure $level"
	[ -n "$level" ] || { echo "no exposure figure for $u"; fail=1; continue; }
	awk -v l="$level" 'BEGIN { exit !(l <= 3.0) }' || { echo "$u: exposure $level > 3.0"; fail=1; }
done
exit $fail
