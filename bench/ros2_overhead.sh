#!/bin/sh
# Per-frame overhead of the ROS 2 path (DDS, Cyclone, on loopback) against
# the HTTP path for the same frames (issue 19): a 640x480 photo as
# sensor_msgs/Image rgb8 and as the same pixels in a PNG over HTTP, and one
# JPEG as CompressedImage and over HTTP. A tiny model (one 1x1 conv and a
# pooling at 32x32), so the daemon's own time is mostly the decode and resize;
# the overhead is each frame's round trip minus the daemon's timing_ms.total.
# Medians of N frames per path, the paths in turn.
# Usage: bench/ros2_overhead.sh [BUILD_DIR] [N]
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
n=${2:-200}
cmake --build "$build" --target splitd bench_ros2_overhead -j2 >/dev/null
tmp=$(mktemp -d /tmp/splitd-ros2-bench.XXXXXX)
trap 'kill $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" "$src/tests/data/api/bench_224.jpg" <<'PY'
import io, sys, numpy as np
from onnx import TensorProto, helper, numpy_helper
import onnx
from PIL import Image
d = sys.argv[1]
w = numpy_helper.from_array(np.full((4, 3, 1, 1), 0.1, np.float32), "w")
g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"]),
                       helper.make_node("GlobalAveragePool", ["c"], ["y"])], "tiny",
                      [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 32, 32])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 1, 1])], [w])
m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
m.ir_version = 7
onnx.save(m, d + "/tiny.onnx")
# a photo (tests/data/api/bench_224.jpg) at 640x480 with a camera's noise (+-4)
src = Image.open(sys.argv[2]).convert("RGB").resize((640, 480), Image.BICUBIC)
noise = np.random.default_rng(19).integers(-4, 5, (480, 640, 3))
rgb = np.clip(np.asarray(src, np.int32) + noise, 0, 255).astype(np.uint8)
rgb.tofile(d + "/frame.rgb")
Image.fromarray(rgb).save(d + "/frame.png")
Image.fromarray(rgb).save(d + "/frame.jpg", quality=90)
PY
domain=$(( $$ % 200 + 10 ))
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$tmp/cyclonedds.xml" <<XML
<CycloneDDS><Domain Id="any"><General><Interfaces><NetworkInterface address="127.0.0.1"/></Interfaces>
<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>
<Peers><Peer Address="127.0.0.1"/></Peers></Discovery></Domain></CycloneDDS>
XML
export CYCLONEDDS_URI="file://$tmp/cyclonedds.xml"
cat > "$tmp/splitd.conf" <<CONF
[daemon]
threads = 1
state_dir = $tmp
log_level = warning
[api]
listen = 127.0.0.1:$port
[power]
sysfs_root = $tmp
[model.tiny]
path = $tmp/tiny.onnx
[ros2]
domain_id = $domain
[ros2.raw]
topic = /bench/image_raw
json = /bench/result
qos = reliable
[ros2.jpeg]
topic = /bench/compressed
type = compressed
json = /bench/jpeg_result
qos = reliable
CONF
"$build/daemon/splitd" serve -c "$tmp/splitd.conf" 2> "$tmp/splitd.log" &
pid=$!
i=0
until curl -sf "http://127.0.0.1:$port/v1/status" >/dev/null; do
	i=$((i + 1)); [ $i -lt 300 ] || { cat "$tmp/splitd.log"; exit 1; }; sleep 0.1
done
echo "# $(uname -m), $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo none), $n frames per path"
"$build/tests/bench_ros2_overhead" "$domain" "$port" "$tmp/frame.rgb" 640 480 "$tmp/frame.png" "$tmp/frame.jpg" "$n"
kill -TERM $pid
wait $pid
