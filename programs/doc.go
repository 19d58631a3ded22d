// Package programs is the registry of served programs (issue 15, item 6):
// pushed versions of program files with their source and state, the
// aliases that name them, and the compiled versions a process runs.
//
// It owns the qa:program* Redis keys (keys.go) and the one Lua script that
// changes them (registry.lua): a push stores a version and moves an alias
// to it, an alias move checks the version exists, and both prune the
// oldest unaliased versions beyond Config.MaxVersions
// (PROGRAM_MAX_VERSIONS) and publish the program's name on
// AliasChannel, in one step.
//
// A version is programfile's hash of the canonical file, the source and the
// state ((*programfile.Bundle).Version). A push is checked whole before a
// version exists (Check, Push): the sizes (PROGRAM_MAX_BYTES in all, the
// YAML within programfile.MaxYAMLBytes), the file (programfile.Parse), the
// source and state the file names, and programfile.Compile. A bad push is a
// *PushError naming the part at fault.
//
// Resolve turns "name[@alias]" into a version through an in-process alias
// cache that every alias move refreshes through pub/sub and that Run
// re-reads whole every Config.RefreshInterval (1 s), so a move reaches every
// API within a second without a restart. The name qa with no pushed qa
// resolves to version "": the built-in program.
//
// Program returns a compiled version, loading it on demand into an LRU
// bounded by Config.CacheVersions entries and Config.CacheBytes pushed
// bytes; a version no longer stored is an error
// wrapping jobs.ErrProgramVersionGone, and qa's version "" comes from the
// fallback source given to New.
package programs
