# The install_consumer test (cmake -P): installs heed from HEED_BUILD_DIR into
# WORK_DIR/prefix, then configures, builds and runs the consumer project in
# CONSUMER_SOURCE_DIR against that prefix alone. Any failing step fails the test.
foreach(var HEED_BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR BUILD_TYPE C_COMPILER CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_consumer.cmake: -D ${var}=... is required")
  endif()
endforeach()

set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")
file(REMOVE_RECURSE "${WORK_DIR}")

function(step what)
  message(STATUS "install_consumer: ${what}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "install_consumer: ${what} failed (${rc})")
  endif()
endfunction()

step("install heed into ${prefix}"
  "${CMAKE_COMMAND}" --install "${HEED_BUILD_DIR}" --prefix "${prefix}" --config "${BUILD_TYPE}")
step("configure the consumer"
  "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${build}"
  "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
  "-DCMAKE_C_COMPILER=${C_COMPILER}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
step("build the consumer" "${CMAKE_COMMAND}" --build "${build}")
step("run the consumer" "${build}/consumer")
