// The difftx version (CMake's project version), for `--version`, metrics and reports.
#pragma once

namespace difftx {

// "0.1.0": the VERSION of the top-level project() in CMakeLists.txt.
const char* difftx_version();

}  // namespace difftx
