# Planner, link estimator and Wi-Fi telemetry (plan/, link/linkest.c,
# link/wifi.c): unit tests built from the module sources directly.
add_executable(nl80211_record ${CMAKE_SOURCE_DIR}/tools/nl80211_record.c)

if(TARGET PkgConfig::CMOCKA)
  # cmd_plan.c runs on a stub engine defined in test_plan.c
  get_target_property(SPLITD_PLAN_SOURCES splitd_plan SOURCES)
  add_executable(test_plan ${CMAKE_SOURCE_DIR}/tests/test_plan.c
    ${SPLITD_PLAN_SOURCES} ${CMAKE_SOURCE_DIR}/link/linkest.c
    ${CMAKE_SOURCE_DIR}/daemon/cmd_plan.c)
  target_include_directories(test_plan PRIVATE ${CMAKE_SOURCE_DIR}/daemon ${CMAKE_SOURCE_DIR}/link ${CMAKE_SOURCE_DIR}/kernels
    ${CMAKE_SOURCE_DIR}/plan)
  target_link_libraries(test_plan PRIVATE PkgConfig::CMOCKA PkgConfig::JANSSON ${MATH_LIB})
  add_test(NAME plan COMMAND test_plan)
  set_tests_properties(plan PROPERTIES LABELS unit)

  # the learnt state's file (plan/plan_state.c)
  add_executable(test_plan_state ${CMAKE_SOURCE_DIR}/tests/test_plan_state.c)
  target_link_libraries(test_plan_state PRIVATE splitd_plan PkgConfig::CMOCKA ${MATH_LIB})
  add_test(NAME plan_state COMMAND test_plan_state)
  set_tests_properties(plan_state PROPERTIES LABELS unit)

  add_executable(test_wifi ${CMAKE_SOURCE_DIR}/tests/test_wifi.c ${CMAKE_SOURCE_DIR}/link/wifi.c)
  target_include_directories(test_wifi PRIVATE ${CMAKE_SOURCE_DIR}/link)
  target_compile_definitions(test_wifi PRIVATE WIFI_DATA_DIR="${CMAKE_SOURCE_DIR}/tests/data/wifi")
  target_link_libraries(test_wifi PRIVATE PkgConfig::CMOCKA PkgConfig::NLGENL)
  add_test(NAME wifi COMMAND test_wifi)
  set_tests_properties(wifi PROPERTIES LABELS unit)
endif()

# The state file's parser (what serve reads from daemon.state_dir) on
# arbitrary bytes: libFuzzer with SPLITD_FUZZ, else its seeds replayed
file(GLOB SPLITD_PLAN_STATE_SEEDS ${CMAKE_SOURCE_DIR}/tests/data/fuzz/plan_state/*)
if(SPLITD_FUZZ)
  add_executable(fuzz_plan_state ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_plan_state.c)
  target_link_libraries(fuzz_plan_state PRIVATE splitd_plan)
  target_include_directories(fuzz_plan_state PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz)
  target_compile_options(fuzz_plan_state PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_plan_state PRIVATE -fsanitize=fuzzer,address,undefined)
else()
  add_executable(fuzz_plan_state_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_plan_state.c)
  target_link_libraries(fuzz_plan_state_replay PRIVATE splitd_plan)
  target_include_directories(fuzz_plan_state_replay PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz)
  target_compile_definitions(fuzz_plan_state_replay PRIVATE SPLITD_FUZZ_REPLAY)
  add_test(NAME fuzz_plan_state_replay COMMAND fuzz_plan_state_replay ${SPLITD_PLAN_STATE_SEEDS})
  set_tests_properties(fuzz_plan_state_replay PROPERTIES LABELS unit)
endif()

# The planner end to end (a robot and a peer on loopback): ?policy= runs the
# plan that policy chooses; daemon.state_dir keeps what was learnt across a
# restart and ignores bad files with a warning. Label asan: the ASan+UBSan
# stage runs it against its build.
add_test(NAME plan_e2e
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/plan_e2e.py $<TARGET_FILE:splitd>)
set_tests_properties(plan_e2e PROPERTIES LABELS "integration;asan" TIMEOUT 300)

# The recorded replies are what tools/nl80211_record writes today.
add_test(NAME wifi_data_fresh COMMAND ${CMAKE_COMMAND}
  "-DEMULATOR=${CMAKE_CROSSCOMPILING_EMULATOR}" -DTOOL=$<TARGET_FILE:nl80211_record> -DDATA=${CMAKE_SOURCE_DIR}/tests/data/wifi
  -DOUT=${CMAKE_CURRENT_BINARY_DIR}/wifi_data
  -P ${CMAKE_SOURCE_DIR}/tests/data/wifi/compare.cmake)
set_tests_properties(wifi_data_fresh PROPERTIES LABELS unit)

file(GLOB SPLITD_WIFI_SEEDS ${CMAKE_SOURCE_DIR}/tests/data/wifi/*.bin
  ${CMAKE_SOURCE_DIR}/tests/data/wifi/*.txt ${CMAKE_SOURCE_DIR}/tests/data/fuzz/wifi/*)
if(SPLITD_FUZZ)
  add_executable(fuzz_wifi ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_wifi.c ${CMAKE_SOURCE_DIR}/link/wifi.c)
  target_include_directories(fuzz_wifi PRIVATE ${CMAKE_SOURCE_DIR}/link)
  target_compile_options(fuzz_wifi PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_wifi PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_wifi PRIVATE PkgConfig::NLGENL)
else()
  # the fuzz body as a regression test: seeds, their prefixes and bit flips
  add_executable(fuzz_wifi_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_wifi.c ${CMAKE_SOURCE_DIR}/link/wifi.c)
  target_include_directories(fuzz_wifi_replay PRIVATE ${CMAKE_SOURCE_DIR}/link)
  target_compile_definitions(fuzz_wifi_replay PRIVATE SPLITD_FUZZ_REPLAY)
  target_link_libraries(fuzz_wifi_replay PRIVATE PkgConfig::NLGENL)
  add_test(NAME fuzz_wifi_replay COMMAND fuzz_wifi_replay ${SPLITD_WIFI_SEEDS})
  set_tests_properties(fuzz_wifi_replay PROPERTIES LABELS unit)
endif()
