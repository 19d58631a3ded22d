// Package docstest runs the documentation. TestDocs takes every ```sh block
// of README.md and docs/*.md and runs it under `bash -euo pipefail` against
// a `qa dev` (the built binary, an embedded Redis, the demo LM answering at
// once, on a free loopback port); every block must exit 0.
//
// The rules, for whoever writes the docs:
//
//   - The blocks of one file run in order in one shell session, so a
//     variable set in one block is there in the next. Each file has its own
//     session and a working directory of its own that holds a copy of the
//     repository's examples/ (a block names examples/claims/claims.yaml as
//     a reader in a checkout would) and nothing else; files run side by
//     side against the same server.
//   - "localhost:8000" in a block is rewritten to the server's address
//     before it runs, and QA_URL points at it, so the docs can say what a
//     reader types after `make run`.
//   - `qa` on PATH is the binary under test. A block's standard input is
//     empty; its standard output is what a ```text block is compared with.
//   - A ```text block right after a ```sh block (blank lines between are
//     fine) is what the block prints on standard output: line by line,
//     trailing spaces ignored. "…" within a line stands for any run of
//     characters on that line (an id, a time, an answer); a line that is
//     only "…" stands for any number of lines, none included. Show standard
//     error with 2>&1. Other blocks (```json, ```) are not checked.
//   - A block that cannot run here (docker, kubectl, a real LM key, the
//     blocking `make run`, go install) is marked ```sh no-test.
//
// The test builds qa once; with the build cached it takes about 15 seconds.
// It is skipped with -short. Outside CI a missing bash or curl skips it; in
// CI (CI=true) it fails.
package docstest
