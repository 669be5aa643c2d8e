#!/bin/sh
# The main job, on its embedded default: installs what is missing, builds,
# makes a model (mobilenet_v2 exported from torchvision), starts a peer and a
# robot splitd on loopback, sends one sample image through the robot, prints
# the answer and the curl line to send more, and serves until Ctrl-C.
#   scripts/start.sh        (SPLITD_PORT, SPLITD_PEER_PORT, SPLITD_MODEL to change)
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${SPLITD_BUILD:-$ROOT/build}
PORT=${SPLITD_PORT:-8080}
PEER_PORT=${SPLITD_PEER_PORT:-8081}
MODEL_NAME=${SPLITD_MODEL:-mobilenet_v2}
JOBS=$(nproc)

say() { printf '\n== %s\n' "$*"; }

say "1/5 packages (scripts/setup.sh)"
scripts/setup.sh

say "2/5 build ($BUILD)"
mkdir -p "$BUILD"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1 ||
	{ cat "$BUILD/configure.log"; exit 1; }
cmake --build "$BUILD" --target splitd -j"$JOBS"
SPLITD=$BUILD/daemon/splitd
"$SPLITD" --version

say "3/5 model: $MODEL_NAME (torchvision, exported once and cached)"
/usr/bin/python3 tools/export_models.py --out "$BUILD/models" "$MODEL_NAME" >/dev/null
MODEL=$BUILD/models/$MODEL_NAME/model.onnx
ls -l "$MODEL"

say "4/5 a peer (127.0.0.1:$PEER_PORT) and a robot (127.0.0.1:$PORT)"
RUN=$BUILD/start
mkdir -p "$RUN"
cat >"$RUN/peer.conf" <<CONF
# the peer: runs model tails for the robot (plain HTTP: loopback only)
[daemon]
role = peer
[api]
listen = 127.0.0.1:$PEER_PORT
[peer_server]
plain = true
[model.$MODEL_NAME]
path = $MODEL
CONF
cat >"$RUN/robot.conf" <<CONF
# the robot: serves the API, runs the head, offloads the rest to the peer
[daemon]
role = robot
[api]
listen = 127.0.0.1:$PORT
[peer]
url = http://127.0.0.1:$PEER_PORT
plain = true
[power]
# no INA3221 here: the estimate source, labelled as such
sysfs_root = /
[model.$MODEL_NAME]
path = $MODEL
CONF
PIDS=""
stop() {
	trap - INT TERM EXIT
	printf '\n== stopping\n'
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $PIDS; do wait "$p" 2>/dev/null || true; done
	exit 0
}
trap stop INT TERM EXIT
"$SPLITD" serve -c "$RUN/peer.conf" 2>"$RUN/peer.log" &
PIDS="$PIDS $!"
"$SPLITD" serve -c "$RUN/robot.conf" 2>&1 &
PIDS="$PIDS $!"

ready=0
for _ in $(seq 1 300); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$PORT/v2/health/ready" 2>/dev/null &&
	   curl -fsS -o /dev/null "http://127.0.0.1:$PEER_PORT/v2/health/ready" 2>/dev/null; then
		ready=1; break
	fi
	for p in $PIDS; do kill -0 "$p" 2>/dev/null || { echo "a daemon exited; peer log:"; cat "$RUN/peer.log"; exit 1; }; done
	sleep 0.2
done
[ $ready = 1 ] || { echo "not ready after 60 s"; exit 1; }

say "5/5 one sample request (tests/data/api/bench_224.jpg)"
curl -sS -X POST -H 'Content-Type: image/jpeg' --data-binary @tests/data/api/bench_224.jpg \
	"http://127.0.0.1:$PORT/v1/infer?outputs=none" | /usr/bin/python3 -m json.tool

cat <<TXT

splitd serves on http://127.0.0.1:$PORT (peer log: $RUN/peer.log). Send more with
  curl -X POST -H 'Content-Type: image/jpeg' --data-binary @YOUR.jpg 'http://127.0.0.1:$PORT/v1/infer?outputs=none'
  curl http://127.0.0.1:$PORT/v1/status      curl http://127.0.0.1:$PORT/metrics
Ctrl-C stops both daemons.
TXT
wait
