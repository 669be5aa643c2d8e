#!/bin/sh
# Installs what splitd needs on Debian 12 (bookworm); idempotent: only what
# is missing is installed, and nothing at all when everything is there.
#   scripts/setup.sh           build, run and test on this machine
#   scripts/setup.sh --cross   also the aarch64 cross toolchain, qemu and the
#                              :arm64 libraries (multiarch), for the Jetson build
# Ubuntu 20.04+ / JetPack: see README.md ("Ubuntu and JetPack").
# This file is the one list of the project's packages.
set -eu

# build
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev dpkg-dev file"
# libraries (each has a pkg-config module found in cmake/SplitdDeps.cmake)
PKGS="$PKGS libmicrohttpd-dev libjansson-dev libsystemd-dev libinih-dev libcmocka-dev
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev libturbojpeg0-dev libspng-dev libpng-dev
  libcurl4-openssl-dev libzstd-dev liblz4-dev libssl-dev libgnutls28-dev libnl-genl-3-dev
  libopenblas-dev"
# ROS 2 over DDS (ros2/): Cyclone DDS and its idlc; ROS 2's rosidl_adapter (.msg -> .idl), run by
# /usr/bin/python3 with empy
PKGS="$PKGS cyclonedds-dev cyclonedds-tools python3-rosidl python3-empy"
# reference models and test fixtures (always /usr/bin/python3)
PKGS="$PKGS python3 python3-onnx python3-numpy python3-torch python3-torchvision python3-pil"
# tests and benchmarks: Prometheus (promtool and a scraping server), load, network namespaces,
# onnxruntime-node for the engine comparison, curl for the README's requests
PKGS="$PKGS prometheus wrk iproute2 curl"
# Debian's nodejs and npm, unless a node with its own npm (NodeSource) is there
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
	PKGS="$PKGS nodejs npm"
fi
# the real-systemd test: a debootstrap root booted with systemd-nspawn
PKGS="$PKGS systemd-container debootstrap"
# the aarch64 cross-build and running its tests under qemu
CROSS_PKGS="gcc-aarch64-linux-gnu qemu-user-static binfmt-support"
ARM64_LIBS="libc6-dev libmicrohttpd-dev libjansson-dev libsystemd-dev libinih-dev libcmocka-dev
  libprotobuf-c-dev libturbojpeg0-dev libspng-dev libpng-dev libcurl4-openssl-dev libzstd-dev
  liblz4-dev libssl-dev libgnutls28-dev libnl-genl-3-dev libopenblas-dev"

cross=0
for a in "$@"; do
	case "$a" in
	--cross) cross=1 ;;
	-h|--help) sed -n '2,9p' "$0"; exit 0 ;;
	*) echo "setup.sh: unknown option '$a'" >&2; exit 2 ;;
	esac
done

SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null || { echo "setup.sh: run as root or install sudo" >&2; exit 1; }
	SUDO="sudo"
fi

want="$PKGS"
if [ $cross = 1 ]; then
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		echo "setup.sh: adding the arm64 architecture (multiarch)"
		$SUDO dpkg --add-architecture arm64
		updated=0
		$SUDO apt-get update -q
	fi
	want="$want $CROSS_PKGS"
	for p in $ARM64_LIBS; do want="$want $p:arm64"; done
fi

missing=""
for p in $want; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	echo "setup.sh: all packages present"
	exit 0
fi
echo "setup.sh: installing:$missing"
if [ "${updated:-1}" = 1 ]; then
	$SUDO apt-get update -q
fi
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing
