# post/ (issue 18): decode + NMS against torchvision's batched_nms and a
# NumPy decode (tests/post/post_ref.py) on the exported detectors' torch
# outputs (fixtures model_<m> of conformance.cmake) and synthetic heads;
# letterbox/stretch mapping; shapes refused.
if(NOT TARGET PkgConfig::CMOCKA)
  return()
endif()
add_executable(test_post ${CMAKE_SOURCE_DIR}/tests/test_post.c)
# GCC 12's aarch64 vectoriser dies on test_reference's reductions (internal
# compiler error in vect_transform_reduction); the test's loops gain nothing
# from it anyway
set_source_files_properties(${CMAKE_SOURCE_DIR}/tests/test_post.c PROPERTIES COMPILE_OPTIONS -fno-tree-vectorize)
target_link_libraries(test_post PRIVATE splitd_post splitd_api PkgConfig::CMOCKA ${MATH_LIB})
set(SPLITD_POST_MODELS yolo_320 yolov8_dfl_conv_160 yolo_pose_320 yolov8_pose_160)
set(SPLITD_POST_FIXTURES)
foreach(m IN LISTS SPLITD_POST_MODELS)
  list(APPEND SPLITD_POST_FIXTURES model_${m})
endforeach()
add_test(NAME post_ref_gen
  COMMAND ${SPLITD_REF_PYTHON} ${CMAKE_SOURCE_DIR}/tests/post/post_ref.py
          ${CMAKE_BINARY_DIR}/models ${CMAKE_BINARY_DIR}/post_ref)
set_tests_properties(post_ref_gen PROPERTIES
  FIXTURES_SETUP post_ref FIXTURES_REQUIRED "${SPLITD_POST_FIXTURES}" LABELS unit TIMEOUT 300)
add_test(NAME post COMMAND test_post ${CMAKE_BINARY_DIR}/post_ref)
set_tests_properties(post PROPERTIES FIXTURES_REQUIRED post_ref LABELS unit TIMEOUT 120)
