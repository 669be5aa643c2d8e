# The whole request path (issue 6): a peer and a robot splitd on loopback,
# every cut and encoding against the all-local answer, the peer killed,
# replaced by another model, stalling, fed garbage. Uses the reference
# models of conformance.cmake (fixtures model_<name>).
if(EXISTS ${CMAKE_SOURCE_DIR}/kernels/placeholder.c)
  return()
endif()
add_test(NAME split_e2e
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/split_e2e.py
          $<TARGET_FILE:splitd> ${CMAKE_BINARY_DIR}/models/mobilenet_v2/model.onnx
          ${CMAKE_BINARY_DIR}/models/squeezenet1_1/model.onnx)
set_tests_properties(split_e2e PROPERTIES
  FIXTURES_REQUIRED "model_mobilenet_v2;model_squeezenet1_1"
  LABELS integration TIMEOUT 600 RUN_SERIAL ON)

add_test(NAME export_tail
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/export_tail.py
          $<TARGET_FILE:splitd> ${CMAKE_BINARY_DIR}/models/mobilenet_v2)
set_tests_properties(export_tail PROPERTIES
  FIXTURES_REQUIRED model_mobilenet_v2 LABELS integration TIMEOUT 300)
