# The CUDA/cuDNN backend (issue 8): label gpu. Registered only when the build
# has the backend (cmake/SplitdDeps.cmake set SPLITD_HAVE_CUDA). Without a
# device every test skips and says so (SKIP_REGULAR_EXPRESSION below makes
# CTest report it as skipped). Reference data comes from the conformance
# fixtures of tests/conformance.cmake (ONNX node cases, exported models).
if(NOT SPLITD_HAVE_CUDA OR NOT TARGET PkgConfig::CMOCKA OR EXISTS ${CMAKE_SOURCE_DIR}/kernels/placeholder.c)
  return()
endif()

add_executable(test_cuda ${CMAKE_CURRENT_SOURCE_DIR}/test_cuda.c
               ${CMAKE_CURRENT_SOURCE_DIR}/onnx/refdata.c ${CMAKE_CURRENT_SOURCE_DIR}/errbound.c)
target_include_directories(test_cuda PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/onnx)
target_link_libraries(test_cuda PRIVATE splitd_kernels splitd_cuda CUDA::cudart PkgConfig::JANSSON PkgConfig::CMOCKA
                      ${MATH_LIB})

# splitd's CUDA backend vs the CPU backend on one model (bench/gpu_vs_torch.sh)
add_executable(splitd_gpu_bench ${CMAKE_SOURCE_DIR}/bench/gpu_bench.c)
target_link_libraries(splitd_gpu_bench PRIVATE splitd_kernels)

set(_cuda_skip "no CUDA device")
add_test(NAME cuda_pack COMMAND test_cuda pack)
add_test(NAME cuda_sticky COMMAND test_cuda sticky)
add_test(NAME cuda_ops COMMAND test_cuda ops ${CMAKE_BINARY_DIR}/onnx_node)
set_tests_properties(cuda_pack cuda_sticky PROPERTIES
  LABELS gpu TIMEOUT 120 SKIP_REGULAR_EXPRESSION "${_cuda_skip}")
# The comparisons' tolerances come from tests/errbound.h, which models sums
# of products in any order: cuDNN's GEMM-family convolution algorithms, not
# FFT or Winograd (test_cuda.c says why), hence SPLITD_CUDA_CONV_ALGO=gemm.
set_tests_properties(cuda_ops PROPERTIES
  LABELS gpu TIMEOUT 600 SKIP_REGULAR_EXPRESSION "${_cuda_skip}"
  ENVIRONMENT SPLITD_CUDA_CONV_ALGO=gemm
  FIXTURES_REQUIRED onnx_node_data)
foreach(m resnet18 mobilenet_v2)
  add_test(NAME cuda_model_${m} COMMAND test_cuda models ${CMAKE_BINARY_DIR}/models ${m})
  set_tests_properties(cuda_model_${m} PROPERTIES
    LABELS gpu TIMEOUT 600 SKIP_REGULAR_EXPRESSION "${_cuda_skip}"
    ENVIRONMENT SPLITD_CUDA_CONV_ALGO=gemm
    FIXTURES_REQUIRED model_${m})
endforeach()
