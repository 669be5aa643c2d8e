# The whole request path (issue 6): a peer and a robot splitd on loopback,
# every cut and encoding against the all-local answer, the peer killed,
# replaced by another model, stalling, fed garbage. Uses the reference
# models of conformance.cmake (fixtures model_<name>).
if(EXISTS ${CMAKE_SOURCE_DIR}/kernels/placeholder.c)
  return()
endif()
# The tolerances of the split-vs-local comparisons: tests/errbound.h's
# rounding model, for the test's input, every cut and encoding.
add_executable(errbound_tool ${CMAKE_CURRENT_SOURCE_DIR}/errbound_tool.c
               ${CMAKE_CURRENT_SOURCE_DIR}/errbound.c)
target_link_libraries(errbound_tool PRIVATE splitd_kernels ${MATH_LIB})
# the model's draws are test arithmetic, not code under test: optimised even
# in the sanitizer build, where they would otherwise take minutes
set_source_files_properties(${CMAKE_CURRENT_SOURCE_DIR}/errbound.c ${CMAKE_CURRENT_SOURCE_DIR}/errbound_tool.c
  PROPERTIES COMPILE_OPTIONS "-O2")
add_test(NAME split_e2e
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/split_e2e.py
          $<TARGET_FILE:splitd> ${CMAKE_BINARY_DIR}/models/mobilenet_v2/model.onnx
          ${CMAKE_BINARY_DIR}/models/squeezenet1_1/model.onnx --errbound $<TARGET_FILE:errbound_tool>)
set_tests_properties(split_e2e PROPERTIES
  FIXTURES_REQUIRED "model_mobilenet_v2;model_squeezenet1_1"
  LABELS integration TIMEOUT 900 RUN_SERIAL ON)
# The same two daemons in the sanitizer build (label asan: scripts/test.sh's
# ASan+UBSan stage), on a spread of cuts: every check, fewer cuts.
add_test(NAME split_e2e_quick
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/split_e2e.py
          $<TARGET_FILE:splitd> ${CMAKE_BINARY_DIR}/models/mobilenet_v2/model.onnx
          ${CMAKE_BINARY_DIR}/models/squeezenet1_1/model.onnx --errbound $<TARGET_FILE:errbound_tool> --quick)
set_tests_properties(split_e2e_quick PROPERTIES
  FIXTURES_REQUIRED "model_mobilenet_v2;model_squeezenet1_1"
  LABELS asan TIMEOUT 900 RUN_SERIAL ON)

add_test(NAME export_tail
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/export_tail.py
          $<TARGET_FILE:splitd> $<TARGET_FILE:errbound_tool> ${CMAKE_BINARY_DIR}/models/mobilenet_v2)
set_tests_properties(export_tail PROPERTIES
  FIXTURES_REQUIRED model_mobilenet_v2 LABELS integration TIMEOUT 300)
# the same on a residual net and a detector (multi-tensor cuts, Resize,
# Split, SiLU), and every cut of a small model of the opset-dependent ops
foreach(m resnet18 yolo_320)
  add_test(NAME export_tail_${m}
    COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/export_tail.py
            $<TARGET_FILE:splitd> $<TARGET_FILE:errbound_tool> ${CMAKE_BINARY_DIR}/models/${m})
  set_tests_properties(export_tail_${m} PROPERTIES
    FIXTURES_REQUIRED model_${m} LABELS integration TIMEOUT 300)
endforeach()
add_test(NAME export_tail_ops
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/export_tail.py
          $<TARGET_FILE:splitd> $<TARGET_FILE:errbound_tool> --ops 7 9 10 11 13 17)
set_tests_properties(export_tail_ops PROPERTIES LABELS integration TIMEOUT 300)

# The robot's side of a request without HTTP (issue 15): the outputs of one
# inference (released any number of times, each buffer freed once) and the
# peer client's blame by cause, against a peer of the test's own; every
# strategy and fallback of the pipeline with a fake link, and a backend
# turning unhealthy (issue 16). A unit test, so the ASan+UBSan stage runs it.
if(TARGET PkgConfig::CMOCKA)
  add_executable(test_pipeline ${CMAKE_CURRENT_SOURCE_DIR}/test_pipeline.c)
  target_link_libraries(test_pipeline PRIVATE splitd_daemon PkgConfig::CMOCKA PkgConfig::MHD)
  # the strategies' tests run tests/models' "chain" (kernels_models)
  add_test(NAME pipeline COMMAND test_pipeline ${SPLITD_UNIT_MODELS_DIR})
  set_tests_properties(pipeline PROPERTIES LABELS unit TIMEOUT 120 FIXTURES_REQUIRED kernels_models)
endif()

# A real robot splitd against a misbehaving peer of the test's own (a proxy
# in front of a real splitd peer answering the wrong shape, dtype, garbage,
# NaN, a trickle, a hang, too much), under concurrent load; a small model of
# its own, seconds even in the sanitizer build. Label asan: the ASan+UBSan
# stage runs it against its build (ctest -L asan).
add_test(NAME peer_faults
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/peer_faults.py $<TARGET_FILE:splitd>)
set_tests_properties(peer_faults PROPERTIES LABELS "integration;asan" TIMEOUT 180)

# Detectors end to end (issue 18): the same detections all-local, at every
# cut (a spread with --quick), banded, the image forwarded; the peer answers
# only the detections; v2's detection tensors; the bad configuration refused
# at load and bad post-processing parameters refused by the peer (400).
# The quick run is the sanitizer build's (label asan).
add_test(NAME detect_e2e
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/detect_e2e.py
          $<TARGET_FILE:splitd> ${CMAKE_BINARY_DIR}/models)
set_tests_properties(detect_e2e PROPERTIES
  FIXTURES_REQUIRED "model_yolo_320;model_yolov8_pose_160"
  LABELS integration TIMEOUT 1800 RUN_SERIAL ON)
add_test(NAME detect_e2e_quick
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/detect_e2e.py
          $<TARGET_FILE:splitd> ${CMAKE_BINARY_DIR}/models --quick)
set_tests_properties(detect_e2e_quick PROPERTIES
  FIXTURES_REQUIRED "model_yolo_320;model_yolov8_pose_160"
  LABELS asan TIMEOUT 1800 RUN_SERIAL ON)
