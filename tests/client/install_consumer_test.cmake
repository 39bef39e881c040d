# cmake -P script: `cmake --install` the "client" component of BUILD_DIR into
# a fresh prefix, configure and build CONSUMER_SOURCE_DIR against it with
# find_package(TreezorTokenBroker), run the result. Fails on the first step
# that fails, with its output.
foreach(var BUILD_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "${var} is required")
  endif()
endforeach()

function(step name)
  execute_process(COMMAND ${ARGN}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)
step("install" ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix}
  --component client)
foreach(f lib/cmake/TreezorTokenBroker/TreezorTokenBrokerConfig.cmake
          include/treezor-token-broker/client/token_client.h
          include/treezor-token-broker/client/token_digest.h
          include/treezor-token-broker/common/clock.h
          include/treezor-token-broker/common/token_digest.h
          include/treezor-token-broker/treezor/broker/v1/token_service.grpc.pb.h
          bin/treezor-token)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
step("configure" ${CMAKE_COMMAND} -S ${CONSUMER_SOURCE_DIR}
  -B ${WORK_DIR}/build -G ${GENERATOR}
  -DCMAKE_PREFIX_PATH=${prefix}
  -DCMAKE_CXX_COMPILER=${CXX_COMPILER}
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}"
  -DCMAKE_BUILD_TYPE=${BUILD_TYPE})
step("build" ${CMAKE_COMMAND} --build ${WORK_DIR}/build)
step("run" ${WORK_DIR}/build/consumer)
message(STATUS "consumer: ${step_output}")
if(NOT step_output MATCHES "client [0-9]+\\.[0-9]+\\.[0-9]+\n.*INVALID_ARGUMENT")
  message(FATAL_ERROR "unexpected consumer output: ${step_output}")
endif()
