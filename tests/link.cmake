# The offload link (link/, the splitd_link library): codec, v2 messages,
# the robot's client (issue 6).
pkg_check_modules(LINK_GNUTLS IMPORTED_TARGET gnutls)
if(TARGET PkgConfig::CMOCKA AND TARGET PkgConfig::LINK_GNUTLS)
  add_executable(test_link ${CMAKE_CURRENT_SOURCE_DIR}/test_link.c)
  target_compile_definitions(test_link PRIVATE SPLITD_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  target_link_libraries(test_link PRIVATE splitd_link splitd_api PkgConfig::CMOCKA PkgConfig::MHD
    PkgConfig::LINK_GNUTLS)
  add_test(NAME link COMMAND test_link)
  set_tests_properties(link PROPERTIES LABELS unit TIMEOUT 120)
endif()

# The fuzz target's body as a regression test: replays generated seeds and
# their mutations, and the corpus in tests/data/link/seeds/peer (runs under
# ASan/UBSan with -DSPLITD_SANITIZE=ON).
set(SPLITD_PEER_SEEDS ${CMAKE_SOURCE_DIR}/tests/data/link/seeds/peer)
add_executable(fuzz_peer_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_peer.c)
target_compile_definitions(fuzz_peer_replay PRIVATE FUZZ_REPLAY)
target_link_libraries(fuzz_peer_replay PRIVATE splitd_link splitd_api)
# (the cross build's emulator, if any, in front: the glob needs a shell)
add_test(NAME link_fuzz_replay COMMAND sh -c "exec $2 \"$0\" \"$1\"/*" $<TARGET_FILE:fuzz_peer_replay>
  ${SPLITD_PEER_SEEDS} "${CMAKE_CROSSCOMPILING_EMULATOR}")
set_tests_properties(link_fuzz_replay PROPERTIES LABELS unit TIMEOUT 120)

if(SPLITD_FUZZ)
  # the libraries the daemon links, built instrumented (SPLITD_FUZZ): the
  # fuzzer drives the deployed code
  add_executable(fuzz_peer ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_peer.c)
  target_compile_options(fuzz_peer PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_peer PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_peer PRIVATE splitd_link splitd_api)
endif()

# Link overhead benchmark (bench/link_overhead.sh builds and runs it).
add_executable(bench_link_overhead EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/bench/link_overhead.c)
target_link_libraries(bench_link_overhead PRIVATE splitd_link PkgConfig::MHD)

# A real peer fed crafted requests (issue 15): the streamed banded request
# with JSON data first, the parameters its parser once ignored, then right
# answers; the model is made by the script (Debian's python3-onnx). Fast,
# and run under the sanitizers' build of the binary too.
if(NOT EXISTS ${CMAKE_SOURCE_DIR}/kernels/placeholder.c)
  add_test(NAME peer_requests
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/e2e/peer_requests.py
            ${CMAKE_CROSSCOMPILING_EMULATOR} $<TARGET_FILE:splitd>)
  set_tests_properties(peer_requests PROPERTIES LABELS unit TIMEOUT 60)
endif()
