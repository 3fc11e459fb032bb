// The version string, compiled in from CMake (src/CMakeLists.txt sets DIFFTX_VERSION here).
#include "difftx/core/version.h"

#ifndef DIFFTX_VERSION
#error "DIFFTX_VERSION must be defined by the build (src/CMakeLists.txt)"
#endif

namespace difftx {

const char* difftx_version() {
  return DIFFTX_VERSION;
}

}  // namespace difftx
