package programs

// Redis keys of the registry. Versions are kept until pruned
// (PROGRAM_MAX_VERSIONS) and the names set holds one entry per program, so
// nothing here grows without bound, and nothing expires: a queued job's
// version must outlive the queue.

// NamesKey is the set of pushed programs' names.
const NamesKey = "qa:programs"

// AliasChannel carries the name of a program whose aliases moved, to every
// process's alias cache.
const AliasChannel = "qa:programs:aliases"

// VersionsKey is a program's versions: a sorted set of version hashes
// scored by their first push, in unix milliseconds made to increase with
// each push (oldest pruned first).
func VersionsKey(name string) string { return "qa:program:" + name + ":versions" }

// AliasesKey is a program's aliases: a hash of alias to version.
func AliasesKey(name string) string { return "qa:program:" + name + ":aliases" }

// VersionKey is one version: a hash of its parts (versionFields).
func VersionKey(name, version string) string { return versionPrefix(name) + version }

// versionPrefix is VersionKey without the version, for the script's
// pruning.
func versionPrefix(name string) string { return "qa:program:" + name + ":version:" }
