# install_check.cmake - ctest script: installs fb from BUILD_DIR into WORK/prefix, then builds
# test/install_consumer against it four ways (find_package with fb::fb and fb::fb_static; pkg-config
# shared and static) and runs each program. Any failure fails the test.
# -DBUILD_DIR=... -DSOURCE_DIR=... -DWORK=... -DCC=...
file(REMOVE_RECURSE ${WORK})
set(prefix ${WORK}/prefix)
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "install_check: '${cmd}' failed (${rc}):\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
foreach(kind shared static)
  set(static OFF)
  if(kind STREQUAL static)
    set(static ON)
  endif()
  run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/test/install_consumer -B ${WORK}/cmake-${kind} -DCMAKE_PREFIX_PATH=${prefix}
      -DFB_CONSUMER_STATIC=${static} -DCMAKE_C_COMPILER=${CC})
  run(${CMAKE_COMMAND} --build ${WORK}/cmake-${kind})
  run(${WORK}/cmake-${kind}/consumer)
endforeach()
# pkg-config, the way a Makefile-based engine would do it.
find_program(PKG_CONFIG pkg-config REQUIRED)
file(GLOB_RECURSE pc ${prefix}/*/fb.pc)
get_filename_component(pcdir "${pc}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
execute_process(COMMAND ${PKG_CONFIG} --cflags fb OUTPUT_VARIABLE cflags OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND ${PKG_CONFIG} --libs fb OUTPUT_VARIABLE libs OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND ${PKG_CONFIG} --variable=libdir fb OUTPUT_VARIABLE libdir OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND ${PKG_CONFIG} --static --libs-only-l fb OUTPUT_VARIABLE slibs OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(cflags UNIX_COMMAND "${cflags}")
separate_arguments(libs UNIX_COMMAND "${libs}")
separate_arguments(slibs UNIX_COMMAND "${slibs}")
list(REMOVE_ITEM slibs -lfb)
run(${CC} -std=c11 -Wall -Werror ${cflags} ${SOURCE_DIR}/test/install_consumer/main.c -o ${WORK}/pc-shared ${libs}
    -Wl,-rpath,${libdir})
run(${WORK}/pc-shared)
run(${CC} -std=c11 -Wall -Werror ${cflags} ${SOURCE_DIR}/test/install_consumer/main.c -o ${WORK}/pc-static
    ${libdir}/libfb.a ${slibs})
run(${WORK}/pc-static)
