# Banded execution of a node range (issue 9, kernels/band.c): every legal cut
# run in B bands against the unbanded engine. Edge-case graphs are generated
# at test time (tests/band/gen_band_graphs.py, Debian's python3-onnx); the
# models come from the model_<name> fixtures of conformance.cmake.
if(NOT TARGET PkgConfig::CMOCKA OR EXISTS ${CMAKE_SOURCE_DIR}/kernels/placeholder.c)
  return()
endif()

add_executable(test_band ${CMAKE_CURRENT_SOURCE_DIR}/test_band.c
  ${CMAKE_CURRENT_SOURCE_DIR}/onnx/refdata.c ${CMAKE_CURRENT_SOURCE_DIR}/errbound.c)
# band.c joins splitd_kernels' source list; until then it is built in here
get_target_property(_splitd_kernel_srcs splitd_kernels SOURCES)
if(NOT "band.c" IN_LIST _splitd_kernel_srcs)
  target_sources(test_band PRIVATE ${CMAKE_SOURCE_DIR}/kernels/band.c)
endif()
target_include_directories(test_band PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/onnx)
target_link_libraries(test_band PRIVATE splitd_kernels PkgConfig::JANSSON PkgConfig::CMOCKA
                      ${MATH_LIB})

set(SPLITD_BAND_GRAPHS_DIR ${CMAKE_BINARY_DIR}/band_graphs)
add_test(NAME band_graphs_gen
  COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/band/gen_band_graphs.py
          ${SPLITD_BAND_GRAPHS_DIR})
set_tests_properties(band_graphs_gen PROPERTIES
  FIXTURES_SETUP band_graphs LABELS unit TIMEOUT 120)
add_test(NAME band_graphs COMMAND test_band graphs ${SPLITD_BAND_GRAPHS_DIR})
set_tests_properties(band_graphs PROPERTIES
  FIXTURES_REQUIRED band_graphs LABELS unit TIMEOUT 120)

foreach(m resnet18 mobilenet_v2 yolo_320)
  add_test(NAME band_model_${m} COMMAND test_band models ${CMAKE_BINARY_DIR}/models ${m})
  set_tests_properties(band_model_${m} PROPERTIES
    FIXTURES_REQUIRED model_${m} LABELS integration TIMEOUT 900)
endforeach()

# Bit equality: with an OpenBLAS kernel whose rounding does not depend on the
# matrix width (no FMA tail paths), banded and unbanded runs must agree
# exactly. x86 builds of OpenBLAS pick kernels at run time by this variable.
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(_band_exact_env "SPLITD_BAND_EXACT=1;OPENBLAS_CORETYPE=Sandybridge")
  add_test(NAME band_graphs_exact COMMAND test_band graphs ${SPLITD_BAND_GRAPHS_DIR})
  set_tests_properties(band_graphs_exact PROPERTIES
    FIXTURES_REQUIRED band_graphs LABELS unit TIMEOUT 120 ENVIRONMENT "${_band_exact_env}")
  # the same with every row copied (no in-place strided kernels): both
  # ways of handing rows to the kernels must give the same bits
  add_test(NAME band_graphs_exact_copy COMMAND test_band graphs ${SPLITD_BAND_GRAPHS_DIR})
  set_tests_properties(band_graphs_exact_copy PROPERTIES
    FIXTURES_REQUIRED band_graphs LABELS unit TIMEOUT 120
    ENVIRONMENT "${_band_exact_env};SPLITD_BAND_COPY=1")
  foreach(m resnet18 mobilenet_v2 yolo_320)
    add_test(NAME band_model_${m}_exact
      COMMAND test_band models ${CMAKE_BINARY_DIR}/models ${m})
    set_tests_properties(band_model_${m}_exact PROPERTIES
      FIXTURES_REQUIRED model_${m} LABELS integration TIMEOUT 900
      ENVIRONMENT "${_band_exact_env}")
  endforeach()
endif()

# bench/band_overhead.sh drives this (not a test)
add_executable(bench_band_overhead EXCLUDE_FROM_ALL ${CMAKE_SOURCE_DIR}/bench/band_overhead.c)
if(NOT "band.c" IN_LIST _splitd_kernel_srcs)
  target_sources(bench_band_overhead PRIVATE ${CMAKE_SOURCE_DIR}/kernels/band.c)
endif()
target_link_libraries(bench_band_overhead PRIVATE splitd_kernels)
