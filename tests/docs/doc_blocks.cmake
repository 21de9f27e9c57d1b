# The C++ blocks of the documentation, checked as written (docs/testing.md,
# "Documentation that compiles"). Included by tests/CMakeLists.txt at
# configure time:
#
#   heed_doc_blocks(README.md "Tour")          # the blocks of one section
#   heed_doc_blocks(docs/extending.md "")      # the blocks of the whole file
#   heed_doc_blocks_finish()                   # writes the manifest and the problems
#
# Every ```cpp block there must follow an HTML comment (unseen in the
# rendered page) that says how to check it:
#
#   <!-- doc-test: program -->     a whole program: compiled against heed and run
#   <!-- doc-test: main -->        statements: the body of int main() (its
#                                  #include lines go above it), compiled and run
#   <!-- doc-test: test -->        statements: the body of a Catch2 TEST_CASE
#                                  (REQUIRE works), compiled and run
#   <!-- doc-test: excerpt PATH -->  lines of the file PATH (from the repository
#                                  root) in their order; "..." stands for what
#                                  is left out, and a line need only begin a
#                                  line of the file. Not compiled: PATH is.
#   <!-- doc-test: skip WHY -->    not checked, for a reason given
#
# The comment of main and test may go on over more lines, up to "-->": code
# the reader does not need to see (includes, the variables the block uses),
# put before the block.
#
# Each compiled block becomes a target heed_doc_<doc>_<line> (not built by
# `all`), its source under <build>/tests/docs/ with #line directives, so a
# compiler's error names the document and line. The `docs` test builds them
# (target heed_doc_blocks) and runs each (tests/docs/run_doc_blocks.cmake).

set(HEED_DOC_DIR "${CMAKE_CURRENT_BINARY_DIR}/docs")
file(MAKE_DIRECTORY "${HEED_DOC_DIR}")
add_custom_target(heed_doc_blocks)
set_property(GLOBAL PROPERTY HEED_DOC_PROBLEMS "")
set_property(GLOBAL PROPERTY HEED_DOC_PROGRAMS "")

# Markdown and C++ as a CMake list of lines: the characters a list gives a
# meaning to (; [ ] \) are swapped for placeholders, and back on the way out.
function(_heed_doc_lines path out)
  file(READ "${path}" text)
  string(REPLACE "\\" "@HEED_BS@" text "${text}")
  string(REPLACE ";" "@HEED_SC@" text "${text}")
  string(REPLACE "[" "@HEED_LB@" text "${text}")
  string(REPLACE "]" "@HEED_RB@" text "${text}")
  string(REPLACE "\n" ";" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

function(_heed_doc_decode var)
  set(text "${${var}}")
  string(REPLACE "@HEED_RB@" "]" text "${text}")
  string(REPLACE "@HEED_LB@" "[" text "${text}")
  string(REPLACE "@HEED_SC@" ";" text "${text}")
  string(REPLACE "@HEED_BS@" "\\" text "${text}")
  set(${var} "${text}" PARENT_SCOPE)
endfunction()

function(_heed_doc_problem text)
  set_property(GLOBAL APPEND_STRING PROPERTY HEED_DOC_PROBLEMS "  ${text}\n")
endfunction()

# An excerpt block (lines of `where`, encoded) against the file `path`.
function(_heed_doc_excerpt where path block)
  if(NOT EXISTS "${PROJECT_SOURCE_DIR}/${path}")
    _heed_doc_problem("${where}: excerpt of ${path}, which does not exist")
    return()
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${PROJECT_SOURCE_DIR}/${path}")
  _heed_doc_lines("${PROJECT_SOURCE_DIR}/${path}" file_lines)
  set(stripped "")
  foreach(line IN LISTS file_lines)
    string(STRIP "${line}" line)
    list(APPEND stripped "${line}")
  endforeach()
  list(LENGTH stripped count)
  set(at 0)  # the first line of the file not yet matched
  foreach(line IN LISTS block)
    string(FIND "${line}" "..." cut)
    if(cut GREATER_EQUAL 0)
      string(SUBSTRING "${line}" 0 ${cut} line)
    endif()
    string(STRIP "${line}" line)
    if(line STREQUAL "")
      continue()
    endif()
    set(found FALSE)
    while(at LESS count)
      list(GET stripped ${at} candidate)
      math(EXPR at "${at} + 1")
      string(FIND "${candidate}" "${line}" pos)
      if(pos EQUAL 0)
        set(found TRUE)
        break()
      endif()
    endwhile()
    if(NOT found)
      _heed_doc_decode(line)
      _heed_doc_problem("${where}: excerpt of ${path}: \"${line}\" begins no line of ${path} after the lines before it")
      return()
    endif()
  endforeach()
endfunction()

# A main or test block as a source file and a target that runs.
function(_heed_doc_program doc line kind setup setup_line block block_line)
  get_filename_component(stem "${doc}" NAME_WE)
  set(name "heed_doc_${stem}_${line}")
  set(includes "#include <heed.h>\n")
  set(body "")
  if(kind STREQUAL "program")
    set(body "#line ${block_line} \"${doc}\"\n")
    foreach(l IN LISTS block)
      string(APPEND body "${l}\n")
    endforeach()
  else()
    if(kind STREQUAL "test")
      string(APPEND includes "#include <catch2/catch.hpp>\n")
    endif()
    # #include lines go above; the others stay on their own line numbers.
    foreach(part setup block)
      set(n ${${part}_line})
      string(APPEND body "#line ${n} \"${doc}\"\n")
      foreach(l IN LISTS ${part})
        if(l MATCHES "^[ \t]*#[ \t]*include")
          string(APPEND includes "${l}\n")
          string(APPEND body "\n")
        else()
          string(APPEND body "${l}\n")
        endif()
      endforeach()
    endforeach()
    if(kind STREQUAL "test")
      set(body "TEST_CASE(\"${doc}:${line}\") {\n${body}}\n")
    else()
      set(body "int main() {\n${body}  return 0;\n}\n")
    endif()
  endif()
  set(source "// ${doc}:${line} (doc-test: ${kind}), written by tests/docs/doc_blocks.cmake: edit the document.\n")
  if(NOT kind STREQUAL "program")
    string(APPEND source "${includes}\n")
  endif()
  string(APPEND source "${body}")
  _heed_doc_decode(source)
  file(WRITE "${HEED_DOC_DIR}/${name}.cpp.new" "${source}")
  file(COPY_FILE "${HEED_DOC_DIR}/${name}.cpp.new" "${HEED_DOC_DIR}/${name}.cpp" ONLY_IF_DIFFERENT)
  add_executable(${name} EXCLUDE_FROM_ALL "${HEED_DOC_DIR}/${name}.cpp")
  target_link_libraries(${name} PRIVATE heed::heed)
  if(kind STREQUAL "test")
    target_link_libraries(${name} PRIVATE Catch2::Catch2WithMain)
  endif()
  add_dependencies(heed_doc_blocks ${name})
  set_property(GLOBAL APPEND PROPERTY HEED_DOC_PROGRAMS "${doc}:${line}=$<TARGET_FILE:${name}>")
endfunction()

function(heed_doc_blocks doc section)
  set(path "${PROJECT_SOURCE_DIR}/${doc}")
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${path}")
  _heed_doc_lines("${path}" lines)
  if(section STREQUAL "")
    set(in_section TRUE)
  else()
    set(in_section FALSE)
    set(section_seen FALSE)
  endif()
  set(n 0)             # this line's number
  set(fence "")        # inside a fence: "cpp" for a checked block, else "other"
  set(comment "")      # collecting a doc-test comment's lines
  set(kind "")         # the last doc-test comment: kind, argument, setup, where it ended
  set(kind_end -1)
  foreach(line IN LISTS lines)
    math(EXPR n "${n} + 1")
    if(NOT fence STREQUAL "")
      if(line MATCHES "^```")
        if(fence STREQUAL "cpp")
          _heed_doc_block()
        endif()
        set(fence "")
      elseif(fence STREQUAL "cpp")
        list(APPEND block "${line}")
      endif()
      continue()
    endif()
    if(NOT comment STREQUAL "")
      if(line MATCHES "-->")
        set(comment "")
        set(kind_end ${n})
      else()
        list(APPEND setup "${line}")
      endif()
      continue()
    endif()
    if(NOT section STREQUAL "" AND line MATCHES "^## ")
      if(line STREQUAL "## ${section}")
        set(in_section TRUE)
        set(section_seen TRUE)
      else()
        set(in_section FALSE)
      endif()
    elseif(line MATCHES "^<!-- doc-test:")
      string(REPLACE "-->" "" words "${line}")
      string(REGEX MATCH "^<!-- doc-test: *([a-z]*) *([^ ]*)" words "${words}")
      set(kind "${CMAKE_MATCH_1}")
      set(argument "${CMAKE_MATCH_2}")
      set(setup "")
      math(EXPR setup_line "${n} + 1")
      if(line MATCHES "-->")
        set(kind_end ${n})
      else()
        set(comment "open")
      endif()
    elseif(line MATCHES "^```")
      if(in_section AND line MATCHES "^```cpp *$")
        set(fence "cpp")
        set(block "")
        math(EXPR block_line "${n} + 1")
        math(EXPR opened_after "${n} - 1")
        if(NOT kind_end EQUAL opened_after)
          set(block_kind "")
        else()
          set(block_kind "${kind}")
        endif()
      else()
        set(fence "other")
      endif()
    endif()
  endforeach()
  if(NOT section STREQUAL "" AND NOT section_seen)
    _heed_doc_problem("${doc}: no section \"## ${section}\"")
  endif()
endfunction()

# The block just closed, in heed_doc_blocks' scope.
macro(_heed_doc_block)
  math(EXPR _fence_line "${block_line} - 1")
  set(_where "${doc}:${_fence_line}")
  if(block_kind STREQUAL "")
    _heed_doc_problem("${_where}: a ```cpp block with no <!-- doc-test: ... --> comment right before it (docs/testing.md)")
  elseif(block_kind STREQUAL "excerpt")
    _heed_doc_excerpt("${_where}" "${argument}" "${block}")
  elseif(block_kind MATCHES "^(program|main|test)$")
    _heed_doc_program("${doc}" "${_fence_line}" "${block_kind}" "${setup}" "${setup_line}" "${block}" "${block_line}")
  elseif(NOT block_kind STREQUAL "skip")
    _heed_doc_problem("${_where}: unknown doc-test kind \"${block_kind}\" (program, main, test, excerpt or skip)")
  endif()
  set(block_kind "")
endmacro()

# Writes what the docs test reads: the programs to run, the problems found.
function(heed_doc_blocks_finish)
  get_property(problems GLOBAL PROPERTY HEED_DOC_PROBLEMS)
  file(WRITE "${HEED_DOC_DIR}/problems.txt" "${problems}")
  get_property(programs GLOBAL PROPERTY HEED_DOC_PROGRAMS)
  string(REPLACE ";" "\n" programs "${programs}")
  file(GENERATE OUTPUT "${HEED_DOC_DIR}/programs.txt" CONTENT "${programs}\n")
endfunction()
