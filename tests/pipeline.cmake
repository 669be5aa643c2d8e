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
# the same on a residual net and a detector (multi-tensor cuts, Resize,
# Split, SiLU), and every cut of a small model of the opset-dependent ops
foreach(m resnet18 yolo_320)
  add_test(NAME export_tail_${m}
    COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/export_tail.py
            $<TARGET_FILE:splitd> ${CMAKE_BINARY_DIR}/models/${m})
  set_tests_properties(export_tail_${m} PROPERTIES
    FIXTURES_REQUIRED model_${m} LABELS integration TIMEOUT 300)
endforeach()
add_test(NAME export_tail_ops
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/export_tail.py
          $<TARGET_FILE:splitd> --ops 7 9 10 11 13 17)
set_tests_properties(export_tail_ops PROPERTIES LABELS integration TIMEOUT 300)
