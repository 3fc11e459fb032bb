# CUDA toolchain: Hopper (sm_90a, wgmma/TMA capable) plus a portable PTX target.
if(NOT DEFINED CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
endif()
# Set before enable_language, which would otherwise pick nvcc's default (sm_75).
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  # 90a: H100/H200 native code; 80: portable Ampere+ code that also JITs forward.
  set(CMAKE_CUDA_ARCHITECTURES 90a 80)
endif()
enable_language(CUDA)
# CMake 3.25 does not know nvcc 13's C++20 flag: tell it (harmless on newer CMake).
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
find_package(CUDAToolkit REQUIRED)
