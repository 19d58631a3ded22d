package programs_test

import (
	"context"
	"encoding/json"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/qaqueue/qaqueue/internal/programstest"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/programs"
)

// optimizedTwoStage is the two-stage program with a state as an optimizer
// leaves it: 16 bootstrapped demos of a few kilobytes each on the answer
// stage (about 70 KB of state), its description made distinct by n.
func optimizedTwoStage(t testing.TB, n int) *programfile.Bundle {
	t.Helper()
	b := twoStage(t, n)
	var state map[string]map[string]any
	if err := json.Unmarshal(b.State, &state); err != nil {
		t.Fatal(err)
	}
	var demos []any
	for i := range 16 {
		passage := strings.Repeat("Passage "+strconv.Itoa(i)+" of the retrieved context, as long as a search result. ", 14)
		demos = append(demos, map[string]any{
			"augmented": true, "question": "Question " + strconv.Itoa(i) + "?",
			"context":   []string{passage, passage, passage},
			"reasoning": strings.Repeat("Because the context says so. ", 10),
			"answer":    strings.Repeat("An answer. ", 20), "citations": []string{passage[:200]}, "sufficient": true,
		})
	}
	state["answer.predict"]["demos"] = demos
	var err error
	if b.State, err = json.Marshal(state); err != nil {
		t.Fatal(err)
	}
	return b
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestProgramMemory: a process that has served 50 versions of a realistic
// program holds at most CacheVersions of them compiled, within 50 MB of
// one that served one (issue 15's constraint). Not parallel: the heap is
// the process's.
func TestProgramMemory(t *testing.T) {
	ctx := context.Background()
	db := redistest.New(t)
	pusher := programstest.New(t, db.Client, programs.Config{MaxVersions: 60})
	var versions []string
	stateBytes := 0
	for n := range 50 {
		b := optimizedTwoStage(t, n+1)
		stateBytes = len(b.State)
		versions = append(versions, push(t, pusher, b).Version)
	}
	served := programstest.New(t, db.Client, programs.Config{})
	zero := liveHeap()
	const first = 4
	for _, v := range versions[:first] {
		if _, err := served.Program(ctx, "two-stage", v); err != nil {
			t.Fatal(err)
		}
	}
	perVersion := (int64(liveHeap()) - int64(zero)) / first
	for _, v := range versions {
		if _, err := served.Program(ctx, "two-stage", v); err != nil {
			t.Fatal(err)
		}
	}
	grew := int64(liveHeap()) - int64(zero)
	runtime.KeepAlive(served)
	t.Logf("state %d bytes; a compiled version holds about %d bytes; 50 versions served through an LRU of %d: live heap +%d bytes",
		stateBytes, perVersion, programs.DefaultCacheVersions, grew)
	if grew > 50<<20 {
		t.Errorf("serving 50 versions grew the live heap by %d bytes, over 50 MB", grew)
	}
	// The LRU holds CacheVersions, not all 50 (the half is slack for the
	// collector's noise).
	if limit := perVersion * programs.DefaultCacheVersions * 3 / 2; grew > limit {
		t.Errorf("serving 50 versions grew the live heap by %d bytes, more than %d versions' worth (%d)", grew, programs.DefaultCacheVersions, limit)
	}
	if perVersion <= 0 {
		t.Errorf("the heap did not grow with the versions held (%d bytes): the measure is broken", grew)
	}
}

// The LRU is bounded by bytes too: versions near PROGRAM_MAX_BYTES are
// held a few at a time, the last one always.
func TestProgramCacheBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := redistest.New(t)
	pusher := programstest.New(t, db.Client, programs.Config{})
	var versions []string
	size := 0
	for n := range 6 {
		b := optimizedTwoStage(t, n+1)
		size = len(b.YAML) + len(b.Source) + len(b.State)
		versions = append(versions, push(t, pusher, b).Version)
	}
	limit := int64(size*5/2) + 1 // room for two versions, not three
	served := programstest.New(t, db.Client, programs.Config{CacheBytes: limit})
	for _, v := range versions {
		if _, err := served.Program(ctx, "two-stage", v); err != nil {
			t.Fatal(err)
		}
	}
	if n, bytes := served.Cached(); n != 2 || bytes > limit {
		t.Errorf("the LRU holds %d versions, %d bytes; want 2 within %d", n, bytes, limit)
	}
	// One version over the bound is still served, and held alone.
	tiny := programstest.New(t, db.Client, programs.Config{CacheBytes: 1})
	for _, v := range versions[:2] {
		if _, err := tiny.Program(ctx, "two-stage", v); err != nil {
			t.Fatal(err)
		}
	}
	if n, _ := tiny.Cached(); n != 1 {
		t.Errorf("with a bound below one version the LRU holds %d, want the last one", n)
	}
}
