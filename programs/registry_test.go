package programs_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qaqueue/qaqueue/internal/programstest"
	"github.com/qaqueue/qaqueue/internal/redistest"
	"github.com/qaqueue/qaqueue/internal/testwait"
	"github.com/qaqueue/qaqueue/jobs"
	"github.com/qaqueue/qaqueue/programfile"
	"github.com/qaqueue/qaqueue/programs"
	"github.com/redis/go-redis/v9"
)

const twoStageDir = "../programfile/testdata/twostage"

// twoStage is the two-stage test program, its description made distinct
// by n so that each n is a version of its own.
func twoStage(t testing.TB, n int) *programfile.Bundle {
	t.Helper()
	b, err := programfile.Load(twoStageDir, "program.yaml", programs.DefaultMaxBytes)
	if err != nil {
		t.Fatal(err)
	}
	if n > 0 {
		b.YAML = []byte(strings.Replace(string(b.YAML), "description: ", "description: v"+strconv.Itoa(n)+" ", 1))
		if b.File, err = programfile.Parse(b.YAML); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// run runs r's alias cache until the test ends, and returns once it is
// subscribed.
func run(t *testing.T, r *programs.Registry, subscribe bool, interval time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { r.RunWith(ctx, subscribe, interval, ready, func(err error) { t.Errorf("registry: %v", err) }) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	<-ready
}

func push(t *testing.T, r *programs.Registry, b *programfile.Bundle) programs.Pushed {
	t.Helper()
	p, err := r.Push(context.Background(), b)
	if err != nil {
		t.Fatalf("push: %v", err)
	}
	return p
}

func TestPushResolveAndRepush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := redistest.New(t)
	r := programstest.New(t, db.Client, programs.Config{})
	b := twoStage(t, 0)
	want, err := b.Version()
	if err != nil {
		t.Fatal(err)
	}
	p := push(t, r, b)
	if p.Name != "two-stage" || p.Version != want || !p.Created {
		t.Fatalf("push: %+v, want version %s created", p, want)
	}
	for _, ref := range []string{"two-stage", "two-stage@latest"} {
		if name, v, err := r.Resolve(ctx, ref); err != nil || name != "two-stage" || v != want {
			t.Errorf("resolve %s: %s %s %v", ref, name, v, err)
		}
	}
	// An identical push stores nothing new.
	if again := push(t, r, twoStage(t, 0)); again.Version != want || again.Created {
		t.Errorf("second push: %+v", again)
	}
	l, err := r.Get(ctx, "two-stage")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Versions) != 1 || l.Aliases["latest"] != want {
		t.Fatalf("listing: %+v", l)
	}
	info := l.Versions[0]
	if len(info.Stages) != 2 || info.Stages[1].Key != "answer.predict" || info.Stages[1].Inputs[0] != (programs.Binding{Field: "question", From: "input.question"}) {
		t.Errorf("stages: %+v", info.Stages)
	}
	if !strings.Contains(string(info.InputSchema), `"context":{"items":{"type":"string"},"title":"Context","type":"array"}`) ||
		!strings.Contains(string(info.OutputSchema), `"sufficient":{"title":"Sufficient","type":"boolean"}`) {
		t.Errorf("schemas: %s %s", info.InputSchema, info.OutputSchema)
	}
	// A second process compiles the version from Redis.
	c, err := programstest.New(t, db.Client, programs.Config{}).Program(ctx, "two-stage", want)
	if err != nil {
		t.Fatal(err)
	}
	if _, pred, err := c.Stage("answer.predict"); err != nil || len(pred.Demos()) != 1 {
		t.Errorf("compiled from Redis: stage answer.predict %v, demos %v (the state's one demo)", err, pred)
	}
}

func TestResolveBuiltinAndUnknown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := redistest.New(t)
	r := programstest.New(t, db.Client, programs.Config{})
	if name, v, err := r.Resolve(ctx, "qa"); err != nil || name != "qa" || v != "" {
		t.Errorf("qa, nothing pushed: %q %q %v; want the built-in version \"\"", name, v, err)
	}
	c, err := r.Program(ctx, "qa", "")
	if err != nil || c.Built.Inputs[0].Name != "question" {
		t.Fatalf("built-in qa: %v", err)
	}
	push(t, r, twoStage(t, 0))
	for ref, want := range map[string]string{
		"claims":           `unknown program "claims" (known: qa, two-stage)`,
		"qa@stable":        `unknown program "qa" (known: qa, two-stage)`,
		"two-stage@stable": `program two-stage has no alias "stable" (its aliases: latest)`,
		"Bad Name":         `unknown program "Bad Name" (known: qa, two-stage)`,
	} {
		_, _, err := r.Resolve(ctx, ref)
		var ue *programs.UnknownError
		if !errors.As(err, &ue) || err.Error() != want {
			t.Errorf("resolve %s: %v, want %s", ref, err, want)
		}
	}
	if _, err := r.Program(ctx, "two-stage", strings.Repeat("0", 64)); !errors.Is(err, jobs.ErrProgramVersionGone) {
		t.Errorf("a version never pushed: %v, want ErrProgramVersionGone", err)
	}
}

func TestPushRefuses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := redistest.New(t)
	r := programstest.New(t, db.Client, programs.Config{MaxBytes: 64 << 10})
	good := twoStage(t, 0)
	for _, tc := range []struct {
		name                string
		yaml, source, state string
		nilSource           bool
		part, limit, says   string
	}{
		{name: "over PROGRAM_MAX_BYTES", yaml: string(good.YAML), source: string(good.Source), state: strings.Repeat(" ", 64<<10),
			part: "push", limit: "PROGRAM_MAX_BYTES", says: "over PROGRAM_MAX_BYTES (65536)"},
		{name: "anchor", yaml: "name: &n two-stage\nstages: []\n", part: "file", says: "1:7: name: anchors (&n) are not allowed"},
		{name: "unknown key", yaml: string(good.YAML) + "extra: 1\n", source: string(good.Source), state: string(good.State),
			part: "file", says: "extra: unknown key"},
		{name: "source missing", yaml: string(good.YAML), nilSource: true, state: string(good.State),
			part: "source", says: "the file names source signatures.py, which the push lacks"},
		{name: "source unreadable", yaml: string(good.YAML), source: "class Answer(dspy.Signature):\n    x: Callable = dspy.InputField()\n", state: string(good.State),
			part: "source", says: "signatures.py:2"},
		{name: "class missing", yaml: string(good.YAML), source: "import dspy\n", state: string(good.State),
			part: "file", says: "class Answer is not a dspy.Signature in signatures.py"},
		{name: "state of another program", yaml: string(good.YAML), source: string(good.Source), state: `{"other.predict": {"demos": []}}`,
			part: "state", says: "other.predict"},
	} {
		var source []byte
		if !tc.nilSource {
			source = []byte(tc.source)
		}
		var state []byte
		if tc.state != "" {
			state = []byte(tc.state)
		}
		b, err := r.Check("", []byte(tc.yaml), source, state)
		if err == nil {
			_, err = r.Push(ctx, b)
		}
		var pe *programs.PushError
		if !errors.As(err, &pe) || pe.Part != tc.part || pe.Limit != tc.limit || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: %v (%#v), want part %s limit %q saying %q", tc.name, err, pe, tc.part, tc.limit, tc.says)
		}
	}
	if _, err := r.Check("claims", good.YAML, good.Source, good.State); err == nil || err.Error() != `name: the file is program "two-stage", pushed as "claims"` {
		t.Errorf("name mismatch: %v", err)
	}
	if n, err := db.Client.Keys(ctx, "qa:program*").Result(); err != nil || len(n) != 0 {
		t.Errorf("refused pushes left keys %v (%v)", n, err)
	}
}

func TestPruneKeepsAliasedVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := redistest.New(t)
	r := programstest.New(t, db.Client, programs.Config{MaxVersions: 3})
	var versions []string
	for n := 1; n <= 5; n++ {
		versions = append(versions, push(t, r, twoStage(t, n)).Version)
		if n == 1 {
			if _, err := r.SetAlias(ctx, "two-stage", "stable", versions[0][:12]); err != nil {
				t.Fatal(err)
			}
		}
	}
	l, err := r.Get(ctx, "two-stage")
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, v := range l.Versions {
		kept = append(kept, v.Version)
	}
	// Newest first: v5, v4 and the aliased v1; v2 and v3 pruned, oldest first.
	if want := []string{versions[4], versions[3], versions[0]}; strings.Join(kept, ",") != strings.Join(want, ",") {
		t.Errorf("kept %v, want %v", kept, want)
	}
	if _, err := r.Program(ctx, "two-stage", versions[1]); !errors.Is(err, jobs.ErrProgramVersionGone) {
		t.Errorf("pruned version: %v, want ErrProgramVersionGone", err)
	}
	if _, err := r.SetAlias(ctx, "two-stage", "stable", versions[2]); !errors.Is(err, programs.ErrNoVersion) {
		t.Errorf("alias to a pruned version: %v, want ErrNoVersion", err)
	}
	// Moving stable off v1 lets the next push prune it.
	if _, err := r.SetAlias(ctx, "two-stage", "stable", versions[3]); err != nil {
		t.Fatal(err)
	}
	push(t, r, twoStage(t, 6))
	if _, err := r.Program(ctx, "two-stage", versions[0]); !errors.Is(err, jobs.ErrProgramVersionGone) {
		t.Errorf("v1 unaliased and oldest: %v, want pruned", err)
	}
}

// An alias moved through one API reaches another's cache: through pub/sub
// (the refresh interval made too long to matter), and through the periodic
// re-read alone.
func TestAliasMoveReachesAnotherProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		subscribe bool
		interval  time.Duration
	}{
		{"pubsub", true, time.Hour},
		{"reread", false, programs.DefaultRefreshInterval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			db := redistest.New(t)
			a := programstest.New(t, db.Client, programs.Config{})
			b := programstest.New(t, db.Client, programs.Config{})
			v1 := push(t, a, twoStage(t, 1)).Version
			v2 := push(t, a, twoStage(t, 2)).Version
			if _, err := a.SetAlias(ctx, "two-stage", "stable", v1); err != nil {
				t.Fatal(err)
			}
			run(t, b, tc.subscribe, tc.interval)
			if _, v, err := b.Resolve(ctx, "two-stage@stable"); err != nil || v != v1 {
				t.Fatalf("before the move: %s %v", v, err)
			}
			if _, err := a.SetAlias(ctx, "two-stage", "stable", v2); err != nil {
				t.Fatal(err)
			}
			testwait.Until(t, "the other process to resolve the moved alias", func() bool {
				_, v, err := b.Resolve(ctx, "two-stage@stable")
				if err != nil {
					t.Fatal(err)
				}
				return v == v2
			})
		})
	}
}

// A worker follows pushes' notices only (no re-read each second): a version
// a push prunes leaves its compiled cache, so a job still queued on it
// fails with program_version_gone, as on a worker that never loaded it.
func TestFollowPrunesDropsAPrunedVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := redistest.New(t)
	pusher := programstest.New(t, db.Client, programs.Config{MaxVersions: 1})
	w := programstest.New(t, db.Client, programs.Config{})
	v1 := push(t, pusher, twoStage(t, 1)).Version
	if _, err := w.Program(ctx, "two-stage", v1); err != nil {
		t.Fatalf("load v1: %v", err)
	}
	run(t, w, true, 0) // FollowPrunes: notices, no ticks
	push(t, pusher, twoStage(t, 2))
	testwait.Until(t, "the worker to drop the pruned version", func() bool {
		_, err := w.Program(ctx, "two-stage", v1)
		return errors.Is(err, jobs.ErrProgramVersionGone)
	})
}

// The built-in qa program is listed, as version "", until a qa is pushed.
func TestListShowsTheBuiltinProgram(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := programstest.New(t, redistest.New(t).Client, programs.Config{})
	l, err := r.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 1 || l[0].Name != "qa" || len(l[0].Versions) != 1 || l[0].Versions[0].Version != "" ||
		!strings.Contains(string(l[0].Versions[0].InputSchema), `"question"`) || len(l[0].Aliases) != 0 {
		t.Fatalf("list with nothing pushed: %+v", l)
	}
	push(t, r, twoStage(t, 0))
	if l, err = r.List(ctx); err != nil || len(l) != 2 || l[0].Name != "qa" || l[1].Name != "two-stage" {
		t.Fatalf("list after a push: %+v %v", l, err)
	}
}

// A pushed qa runs the seed's endpoints, whose shapes are the built-in
// program's: it must take and give the same fields, of the same types.
func TestPushedQAKeepsTheSeedsSignature(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := programstest.New(t, redistest.New(t).Client, programs.Config{})
	qa := func(sig string) *programfile.Bundle {
		t.Helper()
		y := "name: qa\nstages:\n  - key: predict.predict\n    module: ChainOfThought\n    signature: \"" + sig + "\"\n"
		f, err := programfile.Parse([]byte(y))
		if err != nil {
			t.Fatal(err)
		}
		return &programfile.Bundle{File: f, YAML: []byte(y)}
	}
	if _, err := r.Push(ctx, qa("question -> answer, key_concepts, question_type")); err != nil {
		t.Fatalf("qa with the built-in signature: %v", err)
	}
	for sig, says := range map[string]string{
		"question, context -> answer, key_concepts, question_type": "inputs: question, context, want question",
		"question -> answer": "outputs: reasoning, answer, want reasoning, answer, key_concepts, question_type",
		"question -> answer: int, key_concepts, question_type": "output answer is int, want str",
	} {
		_, err := r.Push(ctx, qa(sig))
		var pe *programs.PushError
		if !errors.As(err, &pe) || pe.Part != "file" || !strings.Contains(err.Error(), says) || !strings.Contains(err.Error(), "the seed's endpoints") {
			t.Errorf("qa %q: %v, want a file error saying %q", sig, err, says)
		}
	}
}

// An API checks each submit against its version's inputs. They are kept
// apart from the compiled versions, so an API taking jobs for more
// versions than its compiled LRU holds reads and compiles each once, not
// on every submit.
func TestInputsOutliveTheCompiledCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := redistest.New(t)
	pusher := programstest.New(t, db.Client, programs.Config{})
	v1 := push(t, pusher, twoStage(t, 1)).Version
	v2 := push(t, pusher, twoStage(t, 2)).Version
	log := &redistest.CommandLog{}
	counted := redis.NewClient(db.Options())
	counted.AddHook(log)
	t.Cleanup(func() { _ = counted.Close() })
	api := programstest.New(t, counted, programs.Config{CacheVersions: 1})
	for round := range 3 {
		for _, v := range []string{v1, v2} {
			in, err := api.Inputs(ctx, "two-stage", v)
			if err != nil || len(in) != 2 || in[0].Name != "question" {
				t.Fatalf("round %d, inputs of %s: %v %v", round, v[:12], in, err)
			}
		}
		if got := log.Take("\x00"); round > 0 && len(got) > 0 {
			t.Errorf("round %d read Redis again: %q", round, got)
		}
	}
	if in, err := api.Inputs(ctx, "qa", ""); err != nil || len(in) != 1 || in[0].Name != "question" {
		t.Errorf("the built-in program's inputs: %v %v", in, err)
	}
}
