# Instrumented builds. DIFFTX_SANITIZE: AddressSanitizer + UndefinedBehaviorSanitizer for every
# target (the `asan` preset; any UB report aborts the test that hit it). DIFFTX_FUZZ: the same
# plus libFuzzer's coverage instrumentation, for the harnesses of fuzz/ (the `fuzz` preset,
# clang only).
if(DIFFTX_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "DIFFTX_FUZZ needs clang (libFuzzer): use the fuzz preset")
  endif()
  set(DIFFTX_SANITIZE ON)
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
if(DIFFTX_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=undefined)
endif()
