# Regenerates kernels/model/unicode_tables.inc from the installed unicode-data and
# fails when the committed copy differs (run tools/gen_unicode_tables.py).
execute_process(COMMAND ${PYTHON} ${GENERATOR} OUTPUT_FILE ${OUT} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "gen_unicode_tables.py failed (${rc})")
endif()
file(READ ${OUT} fresh)
file(READ ${COMMITTED} committed)
if(NOT fresh STREQUAL committed)
  message(FATAL_ERROR "kernels/model/unicode_tables.inc is stale: run tools/gen_unicode_tables.py > kernels/model/unicode_tables.inc")
endif()
