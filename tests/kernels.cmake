# The engine (issue 3): kernel unit tests against naive references on small
# models generated at test time (tests/models/gen_unit_models.py, Debian's
# python3-onnx), bad-model refusals, and the ONNX loader fuzz target (a seed
# replay when fuzzing is off). The node tests and whole-model checks are in
# conformance.cmake.
set(SPLITD_UNIT_MODELS_DIR ${CMAKE_BINARY_DIR}/unit_models)
add_test(NAME kernels_models_gen
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/models/gen_unit_models.py
          ${SPLITD_UNIT_MODELS_DIR})
set_tests_properties(kernels_models_gen PROPERTIES
  FIXTURES_SETUP kernels_models LABELS unit TIMEOUT 120)

if(TARGET PkgConfig::CMOCKA)
  add_executable(test_kernels ${CMAKE_CURRENT_SOURCE_DIR}/test_kernels.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/errbound.c)
  target_link_libraries(test_kernels PRIVATE splitd_kernels PkgConfig::CMOCKA ${MATH_LIB})
  add_test(NAME kernels COMMAND test_kernels ${SPLITD_UNIT_MODELS_DIR})
  set_tests_properties(kernels PROPERTIES
    FIXTURES_REQUIRED kernels_models LABELS unit TIMEOUT 120)
endif()

if(SPLITD_FUZZ)
  add_executable(fuzz_onnx ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_onnx.c)
  target_compile_options(fuzz_onnx PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(fuzz_onnx PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(fuzz_onnx PRIVATE splitd_kernels)
else()
  add_executable(fuzz_onnx_replay ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/fuzz_onnx.c)
  target_compile_definitions(fuzz_onnx_replay PRIVATE SPLITD_FUZZ_REPLAY)
  target_link_libraries(fuzz_onnx_replay PRIVATE splitd_kernels)
  # seeds: every generated unit model (good and bad), replayed with
  # prefixes, and the corpus of the last fuzzing run (tests/data/fuzz/onnx)
  add_test(NAME fuzz_onnx_replay
    COMMAND sh -c "exec $2 \"$0\" \"$1\"/*.onnx \"$3\"/*" $<TARGET_FILE:fuzz_onnx_replay>
            ${SPLITD_UNIT_MODELS_DIR} "${CMAKE_CROSSCOMPILING_EMULATOR}"
            ${CMAKE_SOURCE_DIR}/tests/data/fuzz/onnx)
  set_tests_properties(fuzz_onnx_replay PROPERTIES
    FIXTURES_REQUIRED kernels_models LABELS unit TIMEOUT 300)
endif()

# The packed GEMM and Conv on every micro-kernel the CPU runs (issue 17):
# AVX-512, AVX2, portable C on x86; NEON and portable C on aarch64 (qemu).
if(TARGET PkgConfig::CMOCKA)
  add_executable(test_sgemm ${CMAKE_CURRENT_SOURCE_DIR}/test_sgemm.c)
  target_link_libraries(test_sgemm PRIVATE splitd_kernels PkgConfig::CMOCKA ${MATH_LIB})
  add_test(NAME kernels_isa COMMAND test_sgemm)
  set_tests_properties(kernels_isa PROPERTIES LABELS unit TIMEOUT 120)
endif()
