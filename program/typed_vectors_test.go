package program_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/program/pysource"
)

// The typed vectors are DSPy 3.3.1's own renders and parses of typed
// signatures (testdata/vectors-typed, see its README), pydantic models
// included: every case runs.

// openAIWire is the response_format as the openai provider sends it
// (compact separators), which is what lmclient sends.
const openAIWire = "openai_provider__openai_python_2_53_0_openapi_dumps"

// typedCase is the part every typed vector shares.
type typedCase struct {
	ID              string `json:"id"`
	SignatureName   string `json:"signature_name"`
	SignatureSource string `json:"signature_source"`
	ModuleType      string `json:"module_type"`
}

type renderCase struct {
	typedCase
	Messages []program.Message `json:"messages"`
	Inputs   json.RawMessage   `json:"inputs_json"`
	Demos    json.RawMessage   `json:"demos_json"`
}

type parseCase struct {
	typedCase
	Completion  string          `json:"completion"`
	OK          bool            `json:"ok"`
	Result      json.RawMessage `json:"result"`
	FieldOrder  []string        `json:"result_field_order"`
	ResultTypes map[string]string
	Error       *struct {
		Class   string `json:"exception_class"`
		Message string `json:"message"`
	} `json:"error"`
}

type wireCase struct {
	ID            string            `json:"id"`
	SignatureName string            `json:"signature_name"`
	ModuleType    string            `json:"module_type"`
	WireJSON      map[string]string `json:"wire_json"`
}

func readTyped[T any](t *testing.T, name string) []T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "vectors-typed", name))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []T `json:"vectors"`
	}
	if err := json.Unmarshal(data, &file); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	if len(file.Vectors) == 0 {
		t.Fatalf("%s has no vectors", name)
	}
	return file.Vectors
}

// predictor reads the case's signature source as a user's file is read
// and builds its module.
func predictor(t *testing.T, c typedCase) *program.Predict {
	t.Helper()
	f, err := pysource.Read(c.SignatureName+".py", []byte(c.SignatureSource))
	if err != nil {
		t.Fatalf("read source: %v", err)
	}
	cls, err := f.Signature(c.SignatureName)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := cls.Signature()
	if err != nil {
		t.Fatal(err)
	}
	switch c.ModuleType {
	case "Predict":
		return program.NewPredict(sig)
	case "ChainOfThought":
		p, err := program.NewChainOfThought(sig)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Fatalf("unknown module %q", c.ModuleType)
	return nil
}

// decodeOrdered decodes JSON keeping key order, as DSPy's dicts keep it.
func decodeOrdered(t *testing.T, data json.RawMessage) any {
	t.Helper()
	v, err := program.DecodeJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func renderInputs(t *testing.T, c renderCase) (map[string]any, []*program.Map) {
	t.Helper()
	in := decodeOrdered(t, c.Inputs).(*program.Map)
	inputs := map[string]any{}
	for _, k := range in.Keys() {
		inputs[k], _ = in.Get(k)
	}
	var demos []*program.Map
	for _, d := range decodeOrdered(t, c.Demos).([]any) {
		demos = append(demos, d.(*program.Map))
	}
	return inputs, demos
}

// tally counts the cases of one file that passed, to report N of M.
type tally struct {
	mu            sync.Mutex
	passed, total int
	file          string
}

func newTally(t *testing.T, file string) *tally {
	tl := &tally{file: file}
	t.Cleanup(func() {
		t.Logf("%s: %d of %d cases pass", tl.file, tl.passed, tl.total)
	})
	return tl
}

// track counts t, and whether it passed.
func (tl *tally) track(t *testing.T) {
	tl.mu.Lock()
	tl.total++
	tl.mu.Unlock()
	t.Cleanup(func() {
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if !t.Failed() && !t.Skipped() {
			tl.passed++
		}
	})
}

func TestTypedRenders(t *testing.T) {
	for _, tc := range []struct {
		file    string
		adapter program.Adapter
	}{
		{"typed_chat_renders.json", program.ChatAdapter{}},
		{"typed_json_renders.json", program.JSONAdapter{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			tl := newTally(t, tc.file)
			for _, c := range readTyped[renderCase](t, tc.file) {
				t.Run(c.ID, func(t *testing.T) {
					tl.track(t)
					pred := predictor(t, c.typedCase)
					inputs, demos := renderInputs(t, c)
					got := tc.adapter.Format(pred.Signature(), demos, inputs)
					if diff := cmp.Diff(c.Messages, got); diff != "" {
						t.Errorf("messages (-dspy +program):\n%s", diff)
					}
				})
			}
		})
	}
}

// pyTypeName is the Python type name of a parsed value, as the vectors
// record it in result_types (parameters dropped).
func pyTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case string:
		return "str"
	case bool:
		return "bool"
	case int64, program.BigInt:
		return "int"
	case float64:
		return "float"
	case []any:
		return "list"
	case *program.Map:
		return "dict"
	}
	return reflect.TypeOf(v).String()
}

func TestTypedParses(t *testing.T) {
	for _, tc := range []struct {
		file    string
		adapter program.Adapter
	}{
		{"typed_chat_parse.json", program.ChatAdapter{}},
		{"typed_json_parse.json", program.JSONAdapter{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			tl := newTally(t, tc.file)
			for _, c := range readTyped[parseCase](t, tc.file) {
				t.Run(c.ID, func(t *testing.T) {
					tl.track(t)
					pred := predictor(t, c.typedCase)
					got, err := tc.adapter.Parse(pred.Signature(), c.Completion)
					if !c.OK {
						checkParseError(t, tc.adapter, c, err)
						return
					}
					if err != nil {
						t.Fatalf("Parse: %v", err)
					}
					checkParsed(t, c, got)
				})
			}
		})
	}
}

// checkParseError wants DSPy's error text. ChatAdapter raises
// AdapterParseError and program's *ParseError prints it byte for byte.
// JSONAdapter lets pydantic's ValidationError (or a ValueError) through
// unwrapped; program wraps it in a *ParseError (so a run can fall back and
// a job fails as a parse failure) whose message carries DSPy's text whole.
func checkParseError(t *testing.T, adapter program.Adapter, c parseCase, err error) {
	t.Helper()
	var pe *program.ParseError
	if !errors.As(err, &pe) {
		t.Fatalf("Parse error = %v, want a *ParseError (DSPy: %s: %s)", err, c.Error.Class, c.Error.Message)
	}
	if c.Error.Class == "AdapterParseError" {
		if got := err.Error(); got != c.Error.Message {
			t.Errorf("error text:\n got %q\nwant %q", got, c.Error.Message)
		}
		return
	}
	if _, ok := adapter.(program.JSONAdapter); !ok {
		t.Fatalf("DSPy's %s raised %s, want AdapterParseError", adapter.Name(), c.Error.Class)
	}
	if !strings.Contains(err.Error(), "Error message: "+c.Error.Message+"\n\n") {
		t.Errorf("error text does not carry DSPy's %s:\n got %q\nwant it to contain %q", c.Error.Class, err.Error(), c.Error.Message)
	}
}

func checkParsed(t *testing.T, c parseCase, got *program.Map) {
	t.Helper()
	if diff := cmp.Diff(c.FieldOrder, got.Keys()); diff != "" {
		t.Errorf("field order (-dspy +program):\n%s", diff)
	}
	var want map[string]any
	if err := json.Unmarshal(c.Result, &want); err != nil {
		t.Fatal(err)
	}
	gotJSON, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var gotAny map[string]any
	if err := json.Unmarshal(gotJSON, &gotAny); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, gotAny); diff != "" {
		t.Errorf("result (-dspy +program):\n%s", diff)
	}
	for name, typ := range c.ResultTypes {
		v, _ := got.Get(name)
		if head, _, _ := strings.Cut(typ, "["); pyTypeName(v) != head {
			t.Errorf("%s is a %s (%#v), DSPy gives a %s", name, pyTypeName(v), v, typ)
		}
	}
}

// recordingLM answers every call with an empty text, which no adapter parses, so a run
// makes every attempt, and records the requests.
type recordingLM struct {
	mu   sync.Mutex
	reqs []*program.Request
}

func (*recordingLM) Model() string { return "openai/gpt-4o-mini" }

func (l *recordingLM) Complete(_ context.Context, req *program.Request) (*program.Completion, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.reqs = append(l.reqs, req)
	return &program.Completion{Text: ""}, nil
}

func (*recordingLM) Accept(context.Context, *program.Request, *program.Completion) error { return nil }

// wireFormat is rf as lmclient puts it on the wire.
func wireFormat(rf *program.ResponseFormat) string { return string(rf.Wire()) }

// TestTypedResponseFormats runs each JSON render's module through
// program.Run and compares the response_format of its structured-outputs
// attempt with the one LiteLLM sends, byte for byte; signatures with a
// dict output skip structured outputs for JSON mode, as DSPy does.
func TestTypedResponseFormats(t *testing.T) {
	tl := newTally(t, "response_format_wire.json")
	renders := map[string]renderCase{}
	bySignature := map[string]renderCase{} // demos never change the format
	for _, r := range readTyped[renderCase](t, "typed_json_renders.json") {
		renders[r.ID] = r
		bySignature[r.SignatureName+"/"+r.ModuleType] = r
	}
	// Every render of some signatures is held back; a parse case gives
	// their source.
	sources := map[string]typedCase{}
	for _, file := range []string{"typed_chat_parse.json", "typed_json_parse.json"} {
		for _, p := range readTyped[parseCase](t, file) {
			sources[p.SignatureName] = p.typedCase
		}
	}
	for _, w := range readTyped[wireCase](t, "response_format_wire.json") {
		t.Run(w.ID, func(t *testing.T) {
			tl.track(t)
			// Some renders are held back for an independent check; the
			// same signature and module with other demos stands in.
			r, exact := renders[w.ID]
			if !exact {
				r = bySignature[w.SignatureName+"/"+w.ModuleType]
			}
			var pred *program.Predict
			var inputs map[string]any
			var demos []*program.Map
			if r.ID != "" {
				pred = predictor(t, r.typedCase)
				inputs, demos = renderInputs(t, r)
			} else {
				src, ok := sources[w.SignatureName]
				if !ok {
					t.Fatalf("no source for %s", w.SignatureName)
				}
				src.ModuleType = w.ModuleType
				pred = predictor(t, src)
				inputs = map[string]any{}
				for _, f := range pred.Signature().Inputs() {
					inputs[f.Name] = "x"
				}
			}
			prog, err := program.NewProgram(program.NamedPredict{Key: "predict", Predict: pred.WithDemos(demos)})
			if err != nil {
				t.Fatal(err)
			}
			lm := &recordingLM{}
			var pe *program.ParseError
			if _, err := prog.Run(context.Background(), lm, inputs, nil); !errors.As(err, &pe) {
				t.Fatalf("Run = %v, want the last attempt's parse error", err)
			}
			var formats []string
			for _, req := range lm.reqs {
				if req.ResponseFormat == nil {
					formats = append(formats, "")
					continue
				}
				formats = append(formats, wireFormat(req.ResponseFormat))
			}
			want := []string{"", w.WireJSON[openAIWire], `{"type":"json_object"}`}
			if w.WireJSON[openAIWire] == `{"type":"json_object"}` {
				want = []string{"", `{"type":"json_object"}`}
			}
			if diff := cmp.Diff(want, formats); diff != "" {
				t.Errorf("response_format per attempt (-litellm +program):\n%s", diff)
			}
			if exact && len(lm.reqs) > 1 {
				if diff := cmp.Diff(r.Messages, lm.reqs[1].Messages); diff != "" {
					t.Errorf("JSON attempt messages (-dspy +program):\n%s", diff)
				}
			}
		})
	}
}
