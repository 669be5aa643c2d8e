# power/: unit tests on fake sysfs trees (tests/test_power.c), the sysfs
# parser fuzz target (tests/fuzz/fuzz_sysfs.c) and the sampler overhead
# benchmark helper (bench/power_overhead.c, run by bench/power_overhead.sh).

# A stand-in libnvidia-ml, dlopen()ed by the NVML source under test.
add_library(power_fake_nvml MODULE ${CMAKE_SOURCE_DIR}/tests/test_power.c)
target_compile_definitions(power_fake_nvml PRIVATE SPLITD_FAKE_NVML)

if(TARGET PkgConfig::CMOCKA)
  add_executable(test_power ${CMAKE_SOURCE_DIR}/tests/test_power.c
    ${CMAKE_SOURCE_DIR}/daemon/cmd_power.c ${CMAKE_SOURCE_DIR}/daemon/cmd_util.c)
  target_include_directories(test_power PRIVATE ${CMAKE_SOURCE_DIR}/daemon)
  target_compile_definitions(test_power PRIVATE
    FAKE_NVML_PATH="$<TARGET_FILE:power_fake_nvml>")
  target_link_libraries(test_power PRIVATE splitd_power PkgConfig::CMOCKA
    PkgConfig::JANSSON Threads::Threads ${MATH_LIB})
  add_dependencies(test_power power_fake_nvml)
  add_test(NAME power COMMAND test_power)
  set_tests_properties(power PROPERTIES LABELS unit TIMEOUT 60)
endif()

if(SPLITD_FUZZ)
  add_executable(fuzz_sysfs ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_sysfs.c
    ${CMAKE_SOURCE_DIR}/power/sysfs.c)
  target_include_directories(fuzz_sysfs PRIVATE ${CMAKE_SOURCE_DIR}/power)
  target_compile_options(fuzz_sysfs PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_sysfs PRIVATE -fsanitize=fuzzer,address,undefined)
else()
  # the fuzz body as a regression test: known answers, then the built-in
  # seeds, their prefixes and bit flips
  add_executable(fuzz_sysfs_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_sysfs.c
    ${CMAKE_SOURCE_DIR}/power/sysfs.c)
  target_include_directories(fuzz_sysfs_replay PRIVATE ${CMAKE_SOURCE_DIR}/power)
  target_compile_definitions(fuzz_sysfs_replay PRIVATE SPLITD_FUZZ_REPLAY)
  file(GLOB _sysfs_corpus ${CMAKE_SOURCE_DIR}/tests/data/fuzz/sysfs/*)
  add_test(NAME fuzz_sysfs_replay COMMAND fuzz_sysfs_replay ${_sysfs_corpus})
  set_tests_properties(fuzz_sysfs_replay PROPERTIES LABELS unit)
endif()

if(EXISTS ${CMAKE_SOURCE_DIR}/bench/power_overhead.c)
  add_executable(power_overhead ${CMAKE_SOURCE_DIR}/bench/power_overhead.c)
  target_link_libraries(power_overhead PRIVATE splitd_power Threads::Threads)
endif()
