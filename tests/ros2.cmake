# ros2/ (issue 19): a fuzz target of the frame checks; unit tests of the names, the generated IDL, the wire
# bytes and the frame checks; and the daemon end to end over DDS on loopback
# against a camera and result listener of the tests' own (tests/ros2/).
# Only when built with Cyclone DDS (SPLITD_HAVE_ROS2).
if(SPLITD_HAVE_ROS2)
  add_executable(ros2_peer ${CMAKE_SOURCE_DIR}/tests/ros2/ros2_peer.c)
  target_include_directories(ros2_peer PRIVATE ${SPLITD_ROS2_GEN_DIR})
  # the generated types only (the descriptors are in splitd_ros2's archive)
  target_link_libraries(ros2_peer PRIVATE splitd_ros2 PkgConfig::CYCLONEDDS)

  if(TARGET PkgConfig::CMOCKA)
    add_executable(test_ros2 ${CMAKE_SOURCE_DIR}/tests/test_ros2.c)
    target_include_directories(test_ros2 PRIVATE ${SPLITD_ROS2_GEN_DIR} ${CMAKE_SOURCE_DIR}/ros2)
    target_compile_definitions(test_ros2 PRIVATE SPLITD_ROS2_BUILD_DIR="${CMAKE_BINARY_DIR}/ros2")
    target_link_libraries(test_ros2 PRIVATE splitd_ros2 PkgConfig::CMOCKA ${MATH_LIB})
    # Cyclone's serdata header (the wire bytes) uses GNU asm
    set_target_properties(test_ros2 PROPERTIES C_EXTENSIONS ON)
    add_test(NAME ros2 COMMAND test_ros2)
    set_tests_properties(ros2 PROPERTIES LABELS unit TIMEOUT 120)
  endif()

  add_test(NAME ros2_e2e
    COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/ros2_e2e.py
            $<TARGET_FILE:splitd> $<TARGET_FILE:ros2_peer>)
  set_tests_properties(ros2_e2e PROPERTIES LABELS integration TIMEOUT 600 RUN_SERIAL ON)
  # the same daemon in the sanitizer build (label asan), fewer encodings
  add_test(NAME ros2_e2e_quick
    COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/ros2_e2e.py
            $<TARGET_FILE:splitd> $<TARGET_FILE:ros2_peer> --quick)
  set_tests_properties(ros2_e2e_quick PROPERTIES LABELS asan TIMEOUT 600 RUN_SERIAL ON)
endif()

# bench/ros2_overhead.sh: the DDS path against the HTTP path, per frame
if(SPLITD_HAVE_ROS2)
  add_executable(bench_ros2_overhead ${CMAKE_SOURCE_DIR}/bench/ros2_overhead.c)
  target_include_directories(bench_ros2_overhead PRIVATE ${SPLITD_ROS2_GEN_DIR})
  target_link_libraries(bench_ros2_overhead PRIVATE splitd_ros2 PkgConfig::CYCLONEDDS PkgConfig::CURL
    PkgConfig::JANSSON)
endif()

# The frame checks and conversions face the network: a fuzz target (any
# build: ros2/image.c needs no DDS), replayed on its seeds as a unit test.
if(SPLITD_FUZZ)
  add_executable(fuzz_ros2_frame ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_ros2_frame.c ${CMAKE_SOURCE_DIR}/ros2/image.c)
  target_include_directories(fuzz_ros2_frame PRIVATE ${CMAKE_SOURCE_DIR}/ros2)
  target_compile_options(fuzz_ros2_frame PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_ros2_frame PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_ros2_frame PRIVATE ${MATH_LIB})
else()
  add_executable(fuzz_ros2_frame_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_ros2_frame.c ${CMAKE_SOURCE_DIR}/ros2/image.c)
  target_include_directories(fuzz_ros2_frame_replay PRIVATE ${CMAKE_SOURCE_DIR}/ros2)
  target_compile_definitions(fuzz_ros2_frame_replay PRIVATE SPLITD_FUZZ_REPLAY)
  target_link_libraries(fuzz_ros2_frame_replay PRIVATE ${MATH_LIB})
  file(GLOB _ros2_corpus ${CMAKE_SOURCE_DIR}/tests/data/fuzz/ros2/*)
  add_test(NAME fuzz_ros2_frame_replay COMMAND fuzz_ros2_frame_replay ${_ros2_corpus})
  set_tests_properties(fuzz_ros2_frame_replay PROPERTIES LABELS unit TIMEOUT 120)
endif()
