# Engine conformance: ONNX's official backend node tests and whole models
# compared with torch (issue 3). Reference data is generated into the build
# dir by CTest fixtures (cached there; nothing big is committed):
#   onnx_node_gen   tests/onnx/gen_node_tests.py   -> ${build}/onnx_node
#   models_gen_<m>  tools/export_models.py          -> ${build}/models/<m>
# Both generators need Debian's python3-onnx / python3-torch (SPLITD_REF_PYTHON).

set(SPLITD_REF_PYTHON /usr/bin/python3 CACHE FILEPATH
    "Python with onnx 1.12 and torch, for the conformance reference data")
set(SPLITD_CONF_DIR ${CMAKE_CURRENT_SOURCE_DIR}/onnx)

# The runners compile against kernels/engine.h from day one; they are linked
# and registered once the engine replaces the kernels placeholder.
add_library(splitd_conformance_obj OBJECT
  ${SPLITD_CONF_DIR}/refdata.c
  ${CMAKE_CURRENT_SOURCE_DIR}/test_onnx_node.c
  ${CMAKE_CURRENT_SOURCE_DIR}/test_models.c
  ${CMAKE_CURRENT_SOURCE_DIR}/errbound.c)
target_include_directories(splitd_conformance_obj PRIVATE
  ${SPLITD_CONF_DIR} ${CMAKE_SOURCE_DIR}/kernels)
target_link_libraries(splitd_conformance_obj PRIVATE PkgConfig::JANSSON)
if(TARGET PkgConfig::CMOCKA)
  target_link_libraries(splitd_conformance_obj PRIVATE PkgConfig::CMOCKA)
endif()
set_target_properties(splitd_conformance_obj PROPERTIES EXCLUDE_FROM_ALL ON)

if(NOT TARGET PkgConfig::CMOCKA OR EXISTS ${CMAKE_SOURCE_DIR}/kernels/placeholder.c)
  return()
endif()

foreach(t test_onnx_node test_models)
  add_executable(${t} ${CMAKE_CURRENT_SOURCE_DIR}/${t}.c ${SPLITD_CONF_DIR}/refdata.c
                 ${CMAKE_CURRENT_SOURCE_DIR}/errbound.c)
  target_include_directories(${t} PRIVATE ${SPLITD_CONF_DIR})
  target_link_libraries(${t} PRIVATE splitd_kernels PkgConfig::JANSSON PkgConfig::CMOCKA
                        ${MATH_LIB})
endforeach()

# --- ONNX backend node tests --------------------------------------------
set(SPLITD_ONNX_NODE_DIR ${CMAKE_BINARY_DIR}/onnx_node)
add_test(NAME onnx_node_gen
  COMMAND ${SPLITD_REF_PYTHON} ${SPLITD_CONF_DIR}/gen_node_tests.py
          --out ${SPLITD_ONNX_NODE_DIR} --supported ${SPLITD_CONF_DIR}/supported_ops.txt)
set_tests_properties(onnx_node_gen PROPERTIES
  FIXTURES_SETUP onnx_node_data LABELS unit TIMEOUT 300)
add_test(NAME onnx_node
  COMMAND test_onnx_node ${SPLITD_ONNX_NODE_DIR} ${SPLITD_CONF_DIR}/supported_ops.txt
          ${SPLITD_CONF_DIR}/excluded_cases.txt)
set_tests_properties(onnx_node PROPERTIES
  FIXTURES_REQUIRED onnx_node_data LABELS unit TIMEOUT 300)

# --- whole models vs torch, and split runs ------------------------------
# small ones are unit tests; the big ones integration (vgg16 also slow: 528 MB)
set(SPLITD_MODELS_DIR ${CMAKE_BINARY_DIR}/models)
set(SPLITD_UNIT_MODELS squeezenet1_1 mobilenet_v3_small mobilenet_v2 yolo_320 dbnet_320
    yolov8_dfl_conv_160 yolov8_dfl_sum_160 yolo_pose_320 yolov8_pose_160)
set(SPLITD_INTEGRATION_MODELS resnet18 resnet50 vgg16 vit_b_16_64 swin_t_64 maxvit_t)
foreach(m IN LISTS SPLITD_UNIT_MODELS SPLITD_INTEGRATION_MODELS)
  if(m IN_LIST SPLITD_UNIT_MODELS)
    set(labels unit)
  elseif(m STREQUAL "vgg16")
    set(labels "integration;slow")
  else()
    set(labels integration)
  endif()
  add_test(NAME models_gen_${m}
    COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_SOURCE_DIR}/tools/export_models.py
            --out ${SPLITD_MODELS_DIR} ${m})
  set_tests_properties(models_gen_${m} PROPERTIES
    FIXTURES_SETUP model_${m} LABELS "${labels}" TIMEOUT 600)
  add_test(NAME model_${m} COMMAND test_models ${SPLITD_MODELS_DIR} ${m})
  set_tests_properties(model_${m} PROPERTIES
    FIXTURES_REQUIRED model_${m} LABELS "${labels}" TIMEOUT 900)
endforeach()
