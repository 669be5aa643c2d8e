# Every third-party dependency is found here, once, and exposed as an
# imported target (PkgConfig::NAME) so the folders' CMakeLists stay short.
find_package(PkgConfig REQUIRED)
find_package(Threads REQUIRED)
pkg_check_modules(MHD     REQUIRED IMPORTED_TARGET libmicrohttpd)
pkg_check_modules(JANSSON REQUIRED IMPORTED_TARGET jansson)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(PROTOBUFC REQUIRED IMPORTED_TARGET libprotobuf-c)
pkg_check_modules(TURBOJPEG REQUIRED IMPORTED_TARGET libturbojpeg)
pkg_check_modules(SPNG    REQUIRED IMPORTED_TARGET spng)
pkg_check_modules(CURL    REQUIRED IMPORTED_TARGET libcurl)
pkg_check_modules(ZSTD    REQUIRED IMPORTED_TARGET libzstd)
pkg_check_modules(LZ4     REQUIRED IMPORTED_TARGET liblz4)
pkg_check_modules(OPENSSL REQUIRED IMPORTED_TARGET openssl)
# libmicrohttpd's TLS is GnuTLS: the API verifies robots' client certificates with it.
pkg_check_modules(GNUTLS REQUIRED IMPORTED_TARGET gnutls)
pkg_check_modules(NLGENL  REQUIRED IMPORTED_TARGET libnl-genl-3.0)
# The configuration file is INI, read with Debian's libinih (README says why).
pkg_check_modules(INIH    REQUIRED IMPORTED_TARGET inih)
pkg_check_modules(CMOCKA  IMPORTED_TARGET cmocka)
# OpenBLAS: the CPU backend's GEMM (kernels/README.md says why).
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
find_library(MATH_LIB m REQUIRED)

find_program(PROTOC_C protoc-c REQUIRED)
set(SPLITD_ONNX_PROTO /usr/include/onnx/onnx.proto CACHE FILEPATH "onnx.proto from libonnx-dev")

# CUDA + cuDNN: AUTO turns it on when both are found.
set(SPLITD_HAVE_CUDA OFF)
if(NOT SPLITD_CUDA STREQUAL "OFF")
  find_package(CUDAToolkit QUIET)
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS /usr/local/cuda/include /usr/include)
  find_library(CUDNN_LIBRARY cudnn HINTS /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu)
  if(CUDAToolkit_FOUND AND CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
    set(SPLITD_HAVE_CUDA ON)
  elseif(SPLITD_CUDA STREQUAL "ON")
    message(FATAL_ERROR "SPLITD_CUDA=ON but CUDA toolkit or cuDNN not found")
  endif()
endif()
message(STATUS "splitd: CUDA backend ${SPLITD_HAVE_CUDA}")

# ROS 2 over Cyclone DDS (ros2/): AUTO turns it on when Cyclone DDS (for the
# target: an arm64 cross build needs cyclonedds-dev:arm64), its idlc and
# rosidl_adapter (python3-rosidl, python3-empy, run by /usr/bin/python3) are
# all found; the daemon works without it.
set(SPLITD_ROS2 AUTO CACHE STRING "Build the ROS 2 side (Cyclone DDS): AUTO, ON or OFF")
set_property(CACHE SPLITD_ROS2 PROPERTY STRINGS AUTO ON OFF)
set(SPLITD_ROS2_PYTHON /usr/bin/python3 CACHE FILEPATH "the python3 that runs rosidl_adapter")
set(SPLITD_HAVE_ROS2 OFF)
if(NOT SPLITD_ROS2 STREQUAL "OFF")
  pkg_check_modules(CYCLONEDDS QUIET IMPORTED_TARGET CycloneDDS)
  find_program(SPLITD_IDLC idlc)
  set(_rosidl 1)
  if(EXISTS ${SPLITD_ROS2_PYTHON})
    execute_process(COMMAND ${SPLITD_ROS2_PYTHON} -c "import rosidl_adapter.msg, em"
                    RESULT_VARIABLE _rosidl OUTPUT_QUIET ERROR_QUIET)
  endif()
  if(TARGET PkgConfig::CYCLONEDDS AND SPLITD_IDLC AND _rosidl EQUAL 0)
    set(SPLITD_HAVE_ROS2 ON)
  elseif(SPLITD_ROS2 STREQUAL "ON")
    message(FATAL_ERROR "SPLITD_ROS2=ON but Cyclone DDS (cyclonedds-dev), idlc (cyclonedds-tools) or "
                        "rosidl_adapter (python3-rosidl, python3-empy) is missing: scripts/setup.sh installs them")
  endif()
endif()
message(STATUS "splitd: ROS 2 (Cyclone DDS) ${SPLITD_HAVE_ROS2}")
