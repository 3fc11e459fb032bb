# Third-party libraries, all from Debian packages installed by scripts/install-deps.sh.
find_package(PkgConfig REQUIRED)
find_package(OpenMP REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
# xxHash (libxxhash-dev) is used header-only (XXH_INLINE_ALL): no library to link or to carry
# to other machines.
find_path(XXHASH_INCLUDE_DIR xxhash.h REQUIRED)
if(DIFFTX_TESTS)
  find_package(GTest REQUIRED)
endif()
if(DIFFTX_BENCH)
  find_package(benchmark REQUIRED)
endif()
