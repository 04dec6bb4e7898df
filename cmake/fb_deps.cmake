# fb_deps.cmake - finds fb's dependencies and gives each one target:
#   OpenCL::OpenCL, fb::hwloc, fb::simde (headers), fb::cmocka (tests), benchmark::benchmark (fbench).
# Normally everything comes from Debian's packages through pkg-config / CMake's modules. On an offline
# host (a GPU node without a package registry) set FB_DEPS_PREFIX to the folder .ci/offline-deps filled
# with unpacked .deb files: the search then looks there first and does not need pkg-config.
set(FB_DEPS_PREFIX "" CACHE PATH "Root of dependencies unpacked from .deb files (see .ci/offline-deps)")
if(FB_DEPS_PREFIX)
  get_filename_component(FB_DEPS_PREFIX "${FB_DEPS_PREFIX}" ABSOLUTE)
  list(PREPEND CMAKE_PREFIX_PATH "${FB_DEPS_PREFIX}/usr")
  set(FB_DEPS_LIBDIRS "${FB_DEPS_PREFIX}/usr/lib/x86_64-linux-gnu" "${FB_DEPS_PREFIX}/usr/lib/aarch64-linux-gnu"
                      "${FB_DEPS_PREFIX}/usr/lib")
  list(PREPEND CMAKE_LIBRARY_PATH ${FB_DEPS_LIBDIRS})
  list(PREPEND CMAKE_INCLUDE_PATH "${FB_DEPS_PREFIX}/usr/include")
  message(STATUS "fb: dependencies from ${FB_DEPS_PREFIX}")
endif()

find_package(Threads REQUIRED)
find_package(OpenCL REQUIRED)
find_package(PkgConfig QUIET)

# fb_find_lib(NAME HEADER LIB PKG): an INTERFACE target fb::NAME from pkg-config, else find_path/find_library.
function(fb_find_lib name header lib pkg)
  if(PKG_CONFIG_FOUND AND NOT FB_DEPS_PREFIX)
    pkg_check_modules(FB_PC_${name} QUIET IMPORTED_TARGET ${pkg})
  endif()
  add_library(fb_dep_${name} INTERFACE)
  add_library(fb::${name} ALIAS fb_dep_${name})
  if(TARGET PkgConfig::FB_PC_${name})
    target_link_libraries(fb_dep_${name} INTERFACE PkgConfig::FB_PC_${name})
    return()
  endif()
  find_path(FB_${name}_INCLUDE_DIR ${header})
  find_library(FB_${name}_LIBRARY ${lib})
  if(NOT FB_${name}_INCLUDE_DIR OR NOT FB_${name}_LIBRARY)
    message(FATAL_ERROR "fb: ${name} not found (header ${header}, library ${lib}); install it (bash .ci/deps) "
                        "or set FB_DEPS_PREFIX (see README, offline hosts)")
  endif()
  target_include_directories(fb_dep_${name} INTERFACE ${FB_${name}_INCLUDE_DIR})
  target_link_libraries(fb_dep_${name} INTERFACE ${FB_${name}_LIBRARY})
endfunction()

fb_find_lib(hwloc hwloc.h hwloc hwloc)

find_path(SIMDE_INCLUDE_DIR simde/x86/avx512.h DOC "simde headers (libsimde-dev)")
if(NOT SIMDE_INCLUDE_DIR)
  message(FATAL_ERROR "fb: simde headers not found; install libsimde-dev (bash .ci/deps) or set FB_DEPS_PREFIX")
endif()
