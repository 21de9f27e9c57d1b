# The library's folders are layers (docs/layers.md): each may include only its
# own headers and those of the layers below it. Run by ctest as `layers`:
#   cmake -D SOURCE_DIR=<repo> -P tests/layers/check_layers.cmake
# A line "#include "<folder>/..."" that breaks the rule fails the test and is
# named with its file and line, so a new upward include cannot slip in.
cmake_minimum_required(VERSION 3.25)  # IN_LIST
if(NOT SOURCE_DIR)
  message(FATAL_ERROR "check_layers.cmake: pass -D SOURCE_DIR=<the heed checkout>")
endif()

# folder -> the folders its files may include (itself first).
set(allowed_tensor   tensor)
set(allowed_autograd autograd tensor)
set(allowed_nn       nn autograd tensor)
set(allowed_optim    optim nn autograd tensor)
set(allowed_io       io optim nn autograd tensor)
set(allowed_data     data tensor)
set(allowed_cuda     cuda tensor)
set(allowed_dist     dist nn autograd tensor)
set(layers tensor autograd nn optim io data cuda dist)
set(library_folders ${layers} examples bench tests tools)

set(problems "")
set(checked 0)
foreach(layer IN LISTS layers)
  file(GLOB_RECURSE sources RELATIVE ${SOURCE_DIR}
       ${SOURCE_DIR}/${layer}/*.h ${SOURCE_DIR}/${layer}/*.cpp
       ${SOURCE_DIR}/${layer}/*.cu ${SOURCE_DIR}/${layer}/*.cuh)
  foreach(source IN LISTS sources)
    math(EXPR checked "${checked} + 1")
    file(STRINGS ${SOURCE_DIR}/${source} lines REGEX "^[ \t]*#[ \t]*include[ \t]+\"")
    foreach(line IN LISTS lines)
      if(line MATCHES "#[ \t]*include[ \t]+\"([A-Za-z_]+)/")
        set(folder ${CMAKE_MATCH_1})
        if(folder IN_LIST library_folders AND NOT folder IN_LIST allowed_${layer})
          string(STRIP "${line}" line)
          string(APPEND problems "\n  ${source}: ${line}  (${layer}/ may include only: ${allowed_${layer}})")
        endif()
      endif()
    endforeach()
  endforeach()
endforeach()

if(checked LESS 50)
  message(FATAL_ERROR "check_layers.cmake: only ${checked} files found under ${SOURCE_DIR}; wrong SOURCE_DIR?")
endif()
if(problems)
  message(FATAL_ERROR "includes that point up the layers (docs/layers.md):${problems}")
endif()
message(STATUS "layers: ${checked} files, every include points down the layers")
