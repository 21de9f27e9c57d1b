# The `docs` test (cmake -P): builds the documentation's C++ blocks (target
# heed_doc_blocks, made by tests/docs/doc_blocks.cmake), then runs each.
#   cmake -D BUILD_DIR=<build> -D CONFIG=<config> -D DOC_DIR=<build>/tests/docs -P run_doc_blocks.cmake
# Fails naming the document and line of a block that does not compile, does
# not run to exit status 0, or (excerpts, missing comments) does not check out.
foreach(var BUILD_DIR CONFIG DOC_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_doc_blocks.cmake: -D ${var}=... is required")
  endif()
endforeach()

# Building may configure again first (a document changed): the lists below
# are read after it.
execute_process(COMMAND "${CMAKE_COMMAND}" --build "${BUILD_DIR}" --target heed_doc_blocks --config "${CONFIG}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(NOT rc EQUAL 0)
  message("${out}")
  message(FATAL_ERROR "docs: a documentation block does not compile (its document and line are in the errors above)")
endif()

file(READ "${DOC_DIR}/problems.txt" problems)
if(NOT problems STREQUAL "")
  message(FATAL_ERROR "docs: blocks that do not check out (docs/testing.md):\n${problems}")
endif()

file(STRINGS "${DOC_DIR}/programs.txt" programs)
set(work "${DOC_DIR}/run")
file(REMOVE_RECURSE "${work}")
file(MAKE_DIRECTORY "${work}")
set(ran 0)
foreach(entry IN LISTS programs)
  if(NOT entry MATCHES "^([^=]+)=(.+)$")
    continue()
  endif()
  set(where "${CMAKE_MATCH_1}")
  set(program "${CMAKE_MATCH_2}")
  set(launch "")
  # docs/distributed.md's blocks start MPI: under the sanitizers they run
  # without LeakSanitizer, as the dist tests do (tests/CMakeLists.txt says why).
  if(where MATCHES "^docs/distributed\\.md:" AND DEFINED ENV{ASAN_OPTIONS})
    string(REPLACE "detect_leaks=1" "detect_leaks=0" asan_options "$ENV{ASAN_OPTIONS}")
    set(launch "${CMAKE_COMMAND}" -E env "ASAN_OPTIONS=${asan_options}")
  endif()
  execute_process(COMMAND ${launch} "${program}" WORKING_DIRECTORY "${work}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc EQUAL 0)
    message("${out}")
    message(FATAL_ERROR "docs: the block at ${where} exits with ${rc}")
  endif()
  message(STATUS "docs: ${where} compiles and runs")
  math(EXPR ran "${ran} + 1")
endforeach()
if(ran EQUAL 0)
  message(FATAL_ERROR "docs: no documentation block was built; is ${DOC_DIR}/programs.txt empty?")
endif()
