#!/bin/bash
# The .deb under a real systemd. systemd is not PID 1 on the build machines,
# so this boots a Debian 12 root (debootstrap, cached) with systemd-nspawn,
# installs the package built from BUILD_DIR (cpack -G DEB), and checks:
# dpkg install (user, state dir, conffiles), systemd-analyze verify and
# security, systemctl start (Type=notify), is-active, STATUS=, an HTTP request,
# reload (good and bad config: the old one is kept), journald priorities,
# stop with drain, socket activation through splitd.socket.
#
# usage: tests/nspawn/run.sh BUILD_DIR        (root; exit 77 = skipped)
# env:   SPLITD_NSPAWN_CACHE (default /var/cache/splitd-nspawn), SPLITD_MIRROR
set -euo pipefail

BUILD=$(realpath "$1")
CACHE=${SPLITD_NSPAWN_CACHE:-/var/cache/splitd-nspawn}
MIRROR=${SPLITD_MIRROR:-http://deb.debian.org/debian}
NAME=splitd-test-$$
WORK=$CACHE/run-$$
CG=splitd-nspawn-$$
NSPAWN_PID=""
fails=0

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root"
for c in systemd-nspawn debootstrap nsenter cpack dpkg-deb; do
	command -v $c >/dev/null || skip "no $c (scripts/setup.sh installs it)"
done

log() { printf '[nspawn] %s\n' "$*"; }
ok() { log "ok   $*"; }
bad() { log "FAIL $*"; fails=$((fails + 1)); }
check() { # check DESCRIPTION COMMAND...
	local what=$1; shift
	if "$@"; then ok "$what"; else bad "$what"; fi
}

cleanup() {
	set +e
	if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
		kill -TERM "$NSPAWN_PID"              # the container's systemd shuts down
		for _ in $(seq 1 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$NSPAWN_PID" 2>/dev/null
		wait "$NSPAWN_PID" 2>/dev/null
	fi
	# mounts left below the root, deepest first
	grep -F " $WORK" /proc/self/mountinfo | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m"; done
	rm -rf --one-file-system "$WORK"
	# the cgroups nspawn made below ours (payload/, supervisor/), then ours
	cd /
	for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified /sys/fs/cgroup; do
		[ -d "$h/$CG" ] || continue
		for p in $(cat "$h/$CG/cgroup.procs" 2>/dev/null); do echo "$p" > "$h/cgroup.procs" 2>/dev/null; done
		find "$h/$CG" -depth -type d -exec rmdir {} \; 2>/dev/null
	done
}
trap cleanup EXIT

# --- the package ---
# A CUDA build needs NVIDIA's libraries, which a plain Debian root lacks: then
# the package is made from a CPU-only build of the same source beside it.
PKG_BUILD=$BUILD
if objdump -p "$BUILD/daemon/splitd" | grep -Eq 'NEEDED +lib(cudart|cudnn|cuda|cublas)[.]'; then
	SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt")
	PKG_BUILD=$BUILD/nspawn-cpu
	log "this build links CUDA: packaging a CPU-only build ($PKG_BUILD)"
	cmake -S "$SRC" -B "$PKG_BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPLITD_CUDA=OFF -DBUILD_TESTING=OFF \
		>"$BUILD/nspawn-cpu.log" 2>&1 && cmake --build "$PKG_BUILD" --target splitd -j"$(nproc)" \
		>>"$BUILD/nspawn-cpu.log" 2>&1 || { tail -30 "$BUILD/nspawn-cpu.log"; exit 1; }
fi
log "building the package (cpack -G DEB)"
rm -rf "$BUILD/nspawn-pkg"
(cd "$PKG_BUILD" && cpack -G DEB -B "$BUILD/nspawn-pkg" >"$BUILD/nspawn-cpack.log" 2>&1) ||
	{ cat "$BUILD/nspawn-cpack.log"; exit 1; }
DEB=$(ls "$BUILD"/nspawn-pkg/splitd_*.deb)
DEPENDS=$(dpkg-deb -f "$DEB" Depends)
log "$(basename "$DEB"): Depends: $DEPENDS"
contents=$(dpkg-deb -c "$DEB")
for f in ./usr/bin/splitd ./lib/systemd/system/splitd.service ./lib/systemd/system/splitd.socket \
	 ./etc/splitd/splitd.conf ./etc/splitd/splitd-peer.conf; do
	check "package holds $f" grep -q " $f\$" <<<"$contents"
done

# --- the root: debootstrap once, then the package's dependencies, both cached ---
# nspawn runs in a cgroup of our own, so all it leaves behind can be removed
for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do
	[ -d "$h" ] && mkdir -p "$h/$CG" && echo $$ >"$h/$CG/cgroup.procs"
done
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9
BASE=$CACHE/bookworm
if [ ! -f "$BASE/.splitd-base-done" ]; then
	log "debootstrap bookworm into $BASE (once; cached)"
	rm -rf "$BASE"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus bookworm "$BASE" "$MIRROR" \
		>"$CACHE/debootstrap.log" 2>&1 || { tail -20 "$CACHE/debootstrap.log"; exit 1; }
	touch "$BASE/.splitd-base-done"
fi
DEPS_KEY=$(printf '%s' "$DEPENDS" | sha256sum | cut -c1-16)
if [ "$(cat "$BASE/.splitd-deps" 2>/dev/null)" != "$DEPS_KEY" ]; then
	log "installing the package's dependencies into the cached root"
	cp "$DEB" "$BASE/root/splitd.deb"
	systemd-nspawn --quiet --register=no --keep-unit -D "$BASE" --pipe sh -c \
		"apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends /root/splitd.deb && dpkg --purge splitd && apt-get clean" \
		>"$CACHE/deps.log" 2>&1 || { tail -20 "$CACHE/deps.log"; exit 1; }
	rm -f "$BASE/root/splitd.deb"
	echo "$DEPS_KEY" >"$BASE/.splitd-deps"
fi
log "copying the cached root"
cp -a --reflink=auto "$BASE" "$WORK"
flock -u 9
cp "$DEB" "$WORK/root/splitd.deb"

# --- boot ---
log "booting $NAME (systemd-nspawn --boot, private network)"
systemd-nspawn --boot --register=no --keep-unit --private-network --machine="$NAME" -D "$WORK" \
	>"$BUILD/nspawn-console.log" 2>&1 &
NSPAWN_PID=$!
INIT=""
for _ in $(seq 1 150); do
	INIT=$(pgrep -P "$NSPAWN_PID" -x systemd || true)
	[ -n "$INIT" ] && break
	sleep 0.2
done
[ -n "$INIT" ] || { cat "$BUILD/nspawn-console.log"; echo "container did not start"; exit 1; }

ct() { nsenter -t "$INIT" -m -u -i -n -p -C --root --wd=/ env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
state=""
for _ in $(seq 1 150); do
	state=$(ct systemctl is-system-running 2>/dev/null || true)
	case "$state" in running|degraded) break ;; esac
	sleep 0.2
done
log "container systemd: $state"

http_get() { # PATH -> the response (bash /dev/tcp inside the container's network)
	ct bash -c "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET $1 HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3 && timeout 10 cat <&3" 2>/dev/null || true
}
journal() { ct journalctl -u splitd --no-pager -q "$@" 2>/dev/null || true; }
has() { grep -q -- "$1" <<<"$2"; } # has PATTERN TEXT

# --- install ---
check "dpkg -i" ct dpkg -i /root/splitd.deb
check "user splitd exists" ct getent passwd splitd
check "/var/lib/splitd owned by splitd" test "$(ct stat -c %U /var/lib/splitd)" = splitd
check "conffiles registered" has /etc/splitd/splitd.conf "$(ct dpkg-query -W -f='${Conffiles}' splitd)"
out=$(ct systemd-analyze verify /lib/systemd/system/splitd.service /lib/systemd/system/splitd.socket 2>&1 || true)
check "systemd-analyze verify prints nothing${out:+: $out}" test -z "$out"
exposure=$(ct systemd-analyze security --no-pager splitd.service 2>/dev/null | sed -n 's/.*Overall exposure level for splitd.service: \([0-9.]*\).*/\1/p')
log "systemd-analyze security splitd.service (installed, online): ${exposure:-?}"

# --- start, status, HTTP ---
check "systemctl start splitd" ct systemctl start splitd
check "is-active" test "$(ct systemctl is-active splitd)" = active
status=$(ct systemctl show -p StatusText --value splitd)
log "STATUS: $status"
check "STATUS= text is set" test -n "$status"
resp=$(http_get /v1/status)
check "HTTP GET /v1/status answers 200" has "^HTTP/1.[01] 200" "$resp"
check "it says it is the robot" has '"role": *"robot"' "$resp"
pid1=$(ct systemctl show -p MainPID --value splitd)
check "runs as user splitd" test "$(ct stat -c %U /proc/$pid1)" = splitd

# --- reload: a good change, then a bad file ---
ct sed -i 's/^#log_level = info/log_level = debug/' /etc/splitd/splitd.conf
check "systemctl reload (log_level = debug)" ct systemctl reload splitd
sleep 1
check "reload applied" has 'reload: done (log_level debug)' "$(journal)"
ct cp /etc/splitd/splitd.conf /root/splitd.conf.good
ct sh -c 'printf "[daemon]\nthreds = 2\n" >> /etc/splitd/splitd.conf'
check "systemctl reload (bad file)" ct systemctl reload splitd
sleep 1
check "bad file: error at priority err names line and key, old config kept" \
	has "splitd.conf:[0-9]*: unknown key 'threds'.*keeping the running configuration" "$(journal -p err)"
check "still active, same process" test "$(ct systemctl show -p MainPID --value splitd)" = "$pid1"
check "still answers" has "^HTTP/1.[01] 200" "$(http_get /v1/status)"
ct cp /root/splitd.conf.good /etc/splitd/splitd.conf

# --- stop ---
check "systemctl stop" ct systemctl stop splitd
check "inactive after stop" test "$(ct systemctl is-active splitd || true)" = inactive
check "stopped cleanly (drained)" has 'stop: drained' "$(journal)"

# --- socket activation ---
check "systemctl start splitd.socket" ct systemctl start splitd.socket
check "first connection starts the service and is answered" has "^HTTP/1.[01] 200" "$(http_get /v1/status)"
check "service active after activation" test "$(ct systemctl is-active splitd)" = active
check "the daemon took systemd's socket" has 'socket activation' "$(journal)"
ct systemctl stop splitd.socket splitd.service || true

ct journalctl -u splitd --no-pager -q -o short-monotonic >"$BUILD/nspawn-journal.log" 2>&1 || true
log "journal of splitd: $BUILD/nspawn-journal.log"
if [ $fails -ne 0 ]; then
	log "$fails check(s) failed"
	exit 1
fi
log "all checks passed"
