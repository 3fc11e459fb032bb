# The library's layers as CMake targets. Each area of src/ (with its headers in
# include/difftx/<area>) is one static library `difftx_<area>` that links only the areas it
# names; `difftx_add_layer` also records the dependency table, which the layering test
# (tests/layers, tools/check_layers.py) uses to refuse an #include that reaches upward.
#
#   core            tensors, errors, files, safetensors, JSON input, progress
#   data, model     token data; the one model definition and the Backend interface
#   cpu, cuda       backends (implement model's Backend)
#   runtime, train, generate, hf, report, eval, engine, serve, dist   application layer
#   tools/          the CLI (links everything)
set_property(GLOBAL PROPERTY DIFFTX_LAYER_TABLE "")
set_property(GLOBAL PROPERTY DIFFTX_TABLE_ONLY_LAYERS "")

# difftx_add_layer(<name> [DIR <folder under src/>] [CUDA] [TABLE_ONLY] [DEPENDS <names...>]
#                  [LIBS <items...>])
# Target difftx_<name>; sources: every .cpp (with CUDA also .cu) under src/<folder> (default
# src/<name>). Headers under include/difftx/<folder> belong to the layer too. TABLE_ONLY records
# the layer in the table without building it (the CUDA layers of a CPU build: their includes
# are still checked); a layer depending on it then records the dependency without linking it.
function(difftx_add_layer area)
  cmake_parse_arguments(ARG "CUDA;TABLE_ONLY" "DIR" "DEPENDS;LIBS" ${ARGN})
  if(NOT ARG_DIR)
    set(ARG_DIR ${area})
  endif()
  string(REPLACE ";" " " deps "${ARG_DEPENDS}")
  set_property(GLOBAL APPEND PROPERTY DIFFTX_LAYER_TABLE "${area} ${ARG_DIR}:${deps}")
  if(ARG_TABLE_ONLY)
    set_property(GLOBAL APPEND PROPERTY DIFFTX_TABLE_ONLY_LAYERS ${area})
    return()
  endif()
  set(dir ${PROJECT_SOURCE_DIR}/src/${ARG_DIR})
  if(ARG_CUDA)
    file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${dir}/*.cpp ${dir}/*.cu)
  else()
    file(GLOB_RECURSE sources CONFIGURE_DEPENDS ${dir}/*.cpp)
  endif()
  set(target difftx_${area})
  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC ${PROJECT_SOURCE_DIR}/include)
  get_property(table_only GLOBAL PROPERTY DIFFTX_TABLE_ONLY_LAYERS)
  foreach(dep ${ARG_DEPENDS})
    if(NOT dep IN_LIST table_only)
      target_link_libraries(${target} PUBLIC difftx_${dep})
    endif()
  endforeach()
  if(ARG_LIBS)
    target_link_libraries(${target} PUBLIC ${ARG_LIBS})
  endif()
  difftx_warnings(${target})
endfunction()

# Writes <build>/layers.txt: one line per layer, "name folder: dep dep ...", for the layering test.
function(difftx_write_layer_table)
  get_property(table GLOBAL PROPERTY DIFFTX_LAYER_TABLE)
  set(text "")
  foreach(entry ${table})
    string(APPEND text "${entry}\n")
  endforeach()
  file(WRITE ${PROJECT_BINARY_DIR}/layers.txt "${text}")
endfunction()
