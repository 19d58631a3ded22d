// Package programfile reads program files: the YAML that declares a served
// DSPy program as a chain of stages (issue 15, item 1).
//
// It owns:
//
//   - the file's shape and the checks made before anything is built
//     (Parse): the size limit, no anchors, aliases, tags or unknown keys,
//     a nesting depth bounded before any decoding, the name pattern, unique
//     stage keys, the module enum (Module), relative source and state
//     paths;
//   - the canonical form of a parsed file (File.Canonical), which a
//     version hash covers.
//
// It takes file contents, never paths to open: a server checks what it is
// sent. Every error is an *Error naming the YAML line:column and the key.
package programfile
