# Third-party libraries, all from Debian packages installed by scripts/install-deps.sh.
find_package(PkgConfig REQUIRED)
find_package(OpenMP REQUIRED)
find_package(nlohmann_json 3.10 REQUIRED)
find_package(fmt REQUIRED)
find_package(CLI11 REQUIRED)
pkg_check_modules(OPENBLAS REQUIRED IMPORTED_TARGET openblas)
pkg_check_modules(SENTENCEPIECE REQUIRED IMPORTED_TARGET sentencepiece)
pkg_check_modules(XXHASH REQUIRED IMPORTED_TARGET libxxhash)  # core checksums (XXH3-64)
pkg_check_modules(ZLIB REQUIRED IMPORTED_TARGET zlib)          # gzip inputs of data prepare
pkg_check_modules(ZSTD REQUIRED IMPORTED_TARGET libzstd)       # zstd inputs of data prepare
if(DIFFTX_TESTS)
  find_package(GTest REQUIRED)
endif()
if(DIFFTX_BENCH)
  find_package(benchmark REQUIRED)
endif()
