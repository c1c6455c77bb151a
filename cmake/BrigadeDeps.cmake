# Finds brigade's dependencies without requiring them (see the top CMakeLists).
# Sets BRIGADE_HAVE_SERVER_DEPS, BRIGADE_HAVE_GTEST, BRIGADE_HAVE_CLI11 and the
# imported targets caf::core, caf::io, caf::openssl, PkgConfig::HIREDIS,
# msgpackc-cxx, prometheus-cpp::core/pull, CLI11::CLI11, GTest::gtest_main.
# CAF 0.17 ships no CMake package or .pc file, hence the imported targets below.
find_package(Threads REQUIRED)

set(_brigade_missing "")
if(BRIGADE_ENGINE_ONLY)
  # Behave as on a machine without the packages (tests the engine-only path).
  set(CMAKE_DISABLE_FIND_PACKAGE_OpenSSL ON)
  set(CMAKE_DISABLE_FIND_PACKAGE_msgpack ON)
  set(CMAKE_DISABLE_FIND_PACKAGE_prometheus-cpp ON)
  set(CMAKE_DISABLE_FIND_PACKAGE_GTest ON)
  set(CMAKE_DISABLE_FIND_PACKAGE_PkgConfig ON)
endif()

# CAF 0.17.6 ships no CMake config and no .pc file.
find_path(CAF_INCLUDE_DIR caf/all.hpp)
find_library(CAF_CORE_LIB caf_core)
find_library(CAF_IO_LIB caf_io)
find_library(CAF_OPENSSL_LIB caf_openssl)
find_package(OpenSSL QUIET)
if(CAF_INCLUDE_DIR AND CAF_CORE_LIB AND CAF_IO_LIB AND CAF_OPENSSL_LIB AND OpenSSL_FOUND)
  add_library(caf::core INTERFACE IMPORTED)
  set_target_properties(caf::core PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${CAF_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${CAF_CORE_LIB};Threads::Threads")
  add_library(caf::io INTERFACE IMPORTED)
  set_target_properties(caf::io PROPERTIES INTERFACE_LINK_LIBRARIES "${CAF_IO_LIB};caf::core")
  add_library(caf::openssl INTERFACE IMPORTED)
  set_target_properties(caf::openssl PROPERTIES
    INTERFACE_LINK_LIBRARIES "${CAF_OPENSSL_LIB};caf::io;OpenSSL::SSL")
else()
  list(APPEND _brigade_missing "CAF (libcaf-dev)")
endif()

# hiredis: its CMake config breaks without a version (notes), pkg-config is clean.
find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(HIREDIS QUIET IMPORTED_TARGET hiredis)
endif()
if(NOT HIREDIS_FOUND)
  list(APPEND _brigade_missing "hiredis (libhiredis-dev)")
endif()

find_package(msgpack QUIET)   # msgpack-cxx 4.x: package `msgpack`, target msgpackc-cxx
if(NOT TARGET msgpackc-cxx)
  list(APPEND _brigade_missing "msgpack-cxx (libmsgpack-cxx-dev)")
endif()

find_package(prometheus-cpp QUIET)
find_package(civetweb QUIET CONFIG)  # the HTTP server under prometheus-cpp's pull module
if(NOT TARGET prometheus-cpp::pull OR NOT TARGET civetweb::civetweb)
  list(APPEND _brigade_missing "prometheus-cpp (prometheus-cpp-dev)")
endif()

# The HTTP API: nlohmann-json (JSON) and cpp-httplib (HTTP server; Debian
# builds it as a library with OpenSSL, zlib and Brotli: its pkg-config file
# carries the matching defines).
find_package(nlohmann_json 3.10 QUIET CONFIG)
if(NOT TARGET nlohmann_json::nlohmann_json)
  list(APPEND _brigade_missing "nlohmann-json (nlohmann-json3-dev)")
endif()
if(PkgConfig_FOUND)
  pkg_check_modules(HTTPLIB QUIET IMPORTED_TARGET cpp-httplib>=0.11)
endif()
if(NOT HTTPLIB_FOUND)
  list(APPEND _brigade_missing "cpp-httplib (libcpp-httplib-dev)")
endif()

# The live dashboard's charts: Chart.js from Debian's libjs-chart.js,
# embedded into the binary (runtime/dashboard_assets.cpp.in).
find_file(BRIGADE_CHART_JS chart.min.js PATHS /usr/share/javascript/chart.js NO_DEFAULT_PATH)
if(NOT BRIGADE_CHART_JS OR BRIGADE_ENGINE_ONLY)
  list(APPEND _brigade_missing "Chart.js (libjs-chart.js)")
endif()

find_package(GTest QUIET)
if(TARGET GTest::gtest_main)
  set(BRIGADE_HAVE_GTEST ON)
else()
  set(BRIGADE_HAVE_GTEST OFF)
  list(APPEND _brigade_missing "GoogleTest (googletest)")
endif()

if(_brigade_missing)
  set(BRIGADE_HAVE_SERVER_DEPS OFF)
  list(JOIN _brigade_missing ", " _brigade_missing_text)
  if(BRIGADE_REQUIRE_SERVER_DEPS)
    message(FATAL_ERROR "brigade: missing ${_brigade_missing_text}; run deploy/setup.sh to install them")
  endif()
  message(STATUS "brigade: engine-only build (missing ${_brigade_missing_text})")
else()
  set(BRIGADE_HAVE_SERVER_DEPS ON)
endif()

# CLI11 (header-only, libcli11-dev). BRIGADE_CLI11_INCLUDE_DIR may point at a
# copy of its CLI/ headers on machines without the package (a GPU machine).
find_package(CLI11 QUIET CONFIG)
if(TARGET CLI11::CLI11)
  set(BRIGADE_HAVE_CLI11 ON)
else()
  find_path(BRIGADE_CLI11_INCLUDE_DIR CLI/CLI.hpp)
  if(BRIGADE_CLI11_INCLUDE_DIR)
    add_library(CLI11::CLI11 INTERFACE IMPORTED)
    set_target_properties(CLI11::CLI11 PROPERTIES
      INTERFACE_INCLUDE_DIRECTORIES "${BRIGADE_CLI11_INCLUDE_DIR}")
    set(BRIGADE_HAVE_CLI11 ON)
  else()
    set(BRIGADE_HAVE_CLI11 OFF)
    if(BRIGADE_REQUIRE_SERVER_DEPS)
      message(FATAL_ERROR "brigade: missing CLI11 (libcli11-dev); run deploy/setup.sh")
    endif()
    message(WARNING "brigade: CLI11 not found: the `brigade` program is not built. "
                    "Install libcli11-dev or pass -DBRIGADE_CLI11_INCLUDE_DIR=<dir holding CLI/CLI.hpp>.")
  endif()
endif()
