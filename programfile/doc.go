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
//     version hash covers;
//   - the dataflow between stages (File.Build): which earlier output or
//     program input feeds each stage input, the program's inputs and its
//     outputs, each with the stage it comes from;
//   - the built-in QA program as such a file (QA);
//   - for the CLI and PROGRAMS_DIR only, reading a file with its source
//     and state from a folder (Load), through an os.Root so nothing
//     outside the folder is read;
//   - a bundle (file, source, state) made ready to run (Compile): the
//     classes its stages name read from the source with program/pysource,
//     the predictors built and the state applied.
//
// Parse and Build take file contents, never paths to open: a server checks
// what it is sent. Signatures written as DSPy strings are parsed with
// program.ParseSignature; Build resolves a signature naming a class of the
// program's Python source through the caller's Resolver, and Compile gives
// it one that reads the bundle's source. Parse and Build return an *Error
// naming the YAML line:column and the key.
package programfile
