# Tests of the daemon shell: configuration, the sd_notify protocol with the
# real binary, the systemd units, and a real systemd in a container.
if(TARGET PkgConfig::CMOCKA)
  add_executable(test_config ${CMAKE_SOURCE_DIR}/tests/test_config.c)
  target_link_libraries(test_config PRIVATE splitd_daemon PkgConfig::CMOCKA)
  target_compile_definitions(test_config PRIVATE SPLITD_SOURCE_DIR="${CMAKE_SOURCE_DIR}")
  add_test(NAME config COMMAND test_config)
  set_tests_properties(config PROPERTIES LABELS unit TIMEOUT 60)

  add_executable(test_notify ${CMAKE_SOURCE_DIR}/tests/test_notify.c)
  target_link_libraries(test_notify PRIVATE PkgConfig::CMOCKA)
  target_compile_definitions(test_notify PRIVATE SPLITD_BIN="$<TARGET_FILE:splitd>")
  add_dependencies(test_notify splitd)
  add_test(NAME notify COMMAND test_notify)
  set_tests_properties(notify PROPERTIES LABELS integration TIMEOUT 180)
  # the drain test keeps a real inference in flight: a reference model
  if(DEFINED SPLITD_MODELS_DIR AND NOT EXISTS ${CMAKE_SOURCE_DIR}/kernels/placeholder.c)
    set_tests_properties(notify PROPERTIES FIXTURES_REQUIRED model_squeezenet1_1
      ENVIRONMENT "SPLITD_TEST_MODEL_DIR=${SPLITD_MODELS_DIR}/squeezenet1_1")
  endif()
endif()

# systemd-analyze verify prints nothing; security exposure <= 3.0
add_test(NAME systemd_units
         COMMAND ${CMAKE_SOURCE_DIR}/tests/systemd_units.sh ${CMAKE_SOURCE_DIR}/systemd $<TARGET_FILE:splitd>)
set_tests_properties(systemd_units PROPERTIES LABELS integration TIMEOUT 120)

# The .deb under a real systemd (systemd-nspawn); needs root and debootstrap.
add_test(NAME nspawn COMMAND ${CMAKE_SOURCE_DIR}/tests/nspawn/run.sh ${CMAKE_BINARY_DIR})
set_tests_properties(nspawn PROPERTIES LABELS "nspawn;slow" TIMEOUT 1800 RUN_SERIAL ON)

# The configuration parser as a fuzz target, or its replay as a unit test.
pkg_check_modules(SPLITD_FUZZ_INIH REQUIRED inih)
set(SPLITD_CONFIG_FUZZ_SOURCES ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_config.c
  ${CMAKE_SOURCE_DIR}/daemon/config.c ${CMAKE_SOURCE_DIR}/daemon/config_keys.c
  ${CMAKE_SOURCE_DIR}/daemon/config_value.c ${CMAKE_SOURCE_DIR}/daemon/log.c)
if(SPLITD_FUZZ)
  add_executable(fuzz_config ${SPLITD_CONFIG_FUZZ_SOURCES})
  target_include_directories(fuzz_config PRIVATE ${CMAKE_SOURCE_DIR}/daemon ${CMAKE_SOURCE_DIR}/plan
    ${CMAKE_SOURCE_DIR}/link ${CMAKE_SOURCE_DIR}/kernels)
  target_link_libraries(fuzz_config PRIVATE ${SPLITD_FUZZ_INIH_LINK_LIBRARIES})
  target_compile_options(fuzz_config PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_config PRIVATE -fsanitize=fuzzer,address,undefined)
else()
  add_executable(fuzz_config_replay ${SPLITD_CONFIG_FUZZ_SOURCES})
  target_include_directories(fuzz_config_replay PRIVATE ${CMAKE_SOURCE_DIR}/daemon ${CMAKE_SOURCE_DIR}/plan
    ${CMAKE_SOURCE_DIR}/link ${CMAKE_SOURCE_DIR}/kernels)
  target_link_libraries(fuzz_config_replay PRIVATE ${SPLITD_FUZZ_INIH_LINK_LIBRARIES})
  target_compile_definitions(fuzz_config_replay PRIVATE SPLITD_FUZZ_REPLAY)
  # the corpus of the last fuzzing run (tests/data/fuzz/config) too
  file(GLOB _config_corpus ${CMAKE_SOURCE_DIR}/tests/data/fuzz/config/*)
  add_test(NAME fuzz_config_replay COMMAND fuzz_config_replay ${_config_corpus})
  set_tests_properties(fuzz_config_replay PROPERTIES LABELS unit TIMEOUT 120)
endif()

# Every reloadable key changed by SIGHUP on a running robot and a TLS peer,
# its effect observed from outside (the token refused and accepted, samples
# counted, probes counted at a peer of the test's own, connect deadlines
# against a black-holed port, the Wi-Fi interface in /v1/status), and a bad
# file changing nothing. Label asan: the sanitizers' stage runs it too.
if(NOT EXISTS ${CMAKE_SOURCE_DIR}/kernels/placeholder.c)
  add_test(NAME reload_keys
    COMMAND /usr/bin/python3 ${CMAKE_SOURCE_DIR}/tests/e2e/reload_keys.py $<TARGET_FILE:splitd>)
  set_tests_properties(reload_keys PROPERTIES LABELS "integration;asan" TIMEOUT 300)
endif()
