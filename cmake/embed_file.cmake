# Generate a C file holding one text file as a NUL-terminated string.
# Invoked as: cmake -DIN=... -DOUT=... -DNAME=... -P embed_file.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR bytes "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," arr "${hex}")
file(WRITE "${OUT}.tmp" "/* Generated from ${IN}: do not edit. */\n#include <stddef.h>\nconst char ${NAME}[${bytes} + 1] = {${arr}0};\nconst size_t ${NAME}_len = ${bytes};\n")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
