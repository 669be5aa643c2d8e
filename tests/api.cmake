# api/ (issue 5): parsers vs numpy/PIL/torch references, every endpoint over
# loopback HTTP with libcurl; 16 concurrent clients and a real Prometheus as
# integration; fuzz targets for the v2, npy and image parsers.
set(SPLITD_API_DATA ${CMAKE_SOURCE_DIR}/tests/data/api)
file(GLOB SPLITD_API_SOURCES ${CMAKE_SOURCE_DIR}/api/*.c)

if(TARGET PkgConfig::CMOCKA)
  add_executable(test_api ${CMAKE_SOURCE_DIR}/tests/test_api.c)
  target_compile_definitions(test_api PRIVATE API_DATA_DIR="${SPLITD_API_DATA}")
  target_link_libraries(test_api PRIVATE splitd_api PkgConfig::CMOCKA PkgConfig::CURL
    PkgConfig::JANSSON Threads::Threads ${MATH_LIB})
  add_test(NAME api COMMAND test_api)
  set_tests_properties(api PROPERTIES LABELS unit TIMEOUT 600)
  add_executable(test_api_stream ${CMAKE_SOURCE_DIR}/tests/test_api_stream.c)
  target_link_libraries(test_api_stream PRIVATE splitd_api PkgConfig::CMOCKA Threads::Threads)
  add_test(NAME api_stream COMMAND test_api_stream)
  set_tests_properties(api_stream PROPERTIES LABELS unit TIMEOUT 300)
  add_test(NAME api_integration COMMAND test_api integration)
  set_tests_properties(api_integration PROPERTIES LABELS integration TIMEOUT 600)
endif()

set(SPLITD_API_FUZZ_v2 ${SPLITD_API_DATA}/seeds/v2)
set(SPLITD_API_FUZZ_npy ${SPLITD_API_DATA}/seeds/npy)
set(SPLITD_API_FUZZ_image ${SPLITD_API_DATA}/seeds/image)
foreach(f api_v2 npy image)
  string(REPLACE "api_" "" seeds ${f})
  # the parsers are compiled into the target so the fuzzer instruments them
  if(SPLITD_FUZZ)
    add_executable(fuzz_${f} ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${f}.c ${SPLITD_API_SOURCES})
    target_compile_options(fuzz_${f} PRIVATE -fsanitize=fuzzer,address,undefined
      -fno-sanitize-recover=undefined)
    target_link_options(fuzz_${f} PRIVATE -fsanitize=fuzzer,address,undefined)
    set(t fuzz_${f})
  else()
    add_executable(fuzz_${f}_replay ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_${f}.c ${SPLITD_API_SOURCES})
    target_compile_definitions(fuzz_${f}_replay PRIVATE SPLITD_FUZZ_REPLAY)
    set(t fuzz_${f}_replay)
    file(GLOB seedfiles ${SPLITD_API_FUZZ_${seeds}}/*)
    add_test(NAME fuzz_${f}_replay COMMAND ${t} ${seedfiles})
    set_tests_properties(fuzz_${f}_replay PROPERTIES LABELS unit TIMEOUT 300)
  endif()
  target_include_directories(${t} PRIVATE ${CMAKE_SOURCE_DIR}/api ${CMAKE_SOURCE_DIR}/kernels)
  target_link_libraries(${t} PRIVATE PkgConfig::MHD PkgConfig::JANSSON PkgConfig::TURBOJPEG
    PkgConfig::SPNG Threads::Threads ${MATH_LIB})
  if(TARGET PkgConfig::GNUTLS)
    target_link_libraries(${t} PRIVATE PkgConfig::GNUTLS)
    target_compile_definitions(${t} PRIVATE SPLITD_API_HAVE_GNUTLS)
  endif()
endforeach()

# bench/api_overhead.sh drives this (not a test)
add_executable(bench_api_overhead ${CMAKE_SOURCE_DIR}/bench/api_overhead.c)
target_link_libraries(bench_api_overhead PRIVATE splitd_api PkgConfig::CURL Threads::Threads)
