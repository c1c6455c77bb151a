# Configures and builds brigade as on a GPU machine (no CAF, hiredis,
# msgpack, prometheus-cpp or GoogleTest: BRIGADE_ENGINE_ONLY=ON), then checks
# that `brigade` runs the engine commands and says the server is not built.
# Release (no -g) so ccache hits across build directories. CUDA off: the main
# build compiles kernels/cuda already (bench/gpu/run.sh builds it engine-only).
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SRC} -B ${BIN} -G ${GENERATOR} -DCMAKE_BUILD_TYPE=Release
                        -DBRIGADE_ENGINE_ONLY=ON -DBRIGADE_CUDA=OFF
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "engine-only configure failed:\n${out}\n${err}")
endif()
if(NOT out MATCHES "engine-only build")
  message(FATAL_ERROR "the configure did not report an engine-only build:\n${out}")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BIN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "engine-only build failed:\n${out}\n${err}")
endif()
if(EXISTS ${BIN}/runtime OR EXISTS ${BIN}/tests)
  message(FATAL_ERROR "the engine-only build configured runtime/ or tests/")
endif()
execute_process(COMMAND ${BIN}/app/brigade --version RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "server: not built")
  message(FATAL_ERROR "engine-only brigade --version: exit ${rc}:\n${out}")
endif()
execute_process(COMMAND ${BIN}/app/brigade model info ${VOCAB}/ggml-vocab-llama-spm.gguf RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "32000 tokens")
  message(FATAL_ERROR "engine-only brigade model info: exit ${rc}:\n${out}")
endif()
message(STATUS "engine-only build OK:\n${out}")
