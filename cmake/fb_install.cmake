# fb_install.cmake - what `cmake --install` puts in place: libfb.so.<version> (SONAME libfb.so.0),
# libfb.a, the public headers, a CMake package (find_package(fb) -> fb::fb shared, fb::fb_static) and
# fb.pc for pkg-config. The shared library hides its dependencies; the static one needs OpenCL, hwloc,
# threads and libm at link time: fbConfig.cmake finds them, fb.pc lists them under Libs.private.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set_target_properties(fb PROPERTIES EXPORT_NAME fb)
set_target_properties(fb_static PROPERTIES EXPORT_NAME fb_static)
install(TARGETS fb fb_static EXPORT fbTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY include/fb DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")

set(FB_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/fb)
install(EXPORT fbTargets NAMESPACE fb:: DESTINATION ${FB_CMAKE_DIR})
configure_package_config_file(cmake/fbConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/fbConfig.cmake
                              INSTALL_DESTINATION ${FB_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/fbConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/fbConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/fbConfigVersion.cmake
        DESTINATION ${FB_CMAKE_DIR})

# fb.pc finds its prefix relative to itself (${pcfiledir}), so an installed tree can be moved.
file(RELATIVE_PATH FB_PC_TO_PREFIX /prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig /prefix)
configure_file(cmake/fb.pc.in ${CMAKE_CURRENT_BINARY_DIR}/fb.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/fb.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
