package program

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func fuzzSig(t testing.TB, spec string) *Signature {
	t.Helper()
	sig, err := ParseSignature(spec, "")
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// chunkText splits s at sizes taken from cuts (1 to 8 bytes each, cycling),
// splitting runes too.
func chunkText(s string, cuts []byte) []string {
	if len(cuts) == 0 {
		cuts = []byte{3}
	}
	var out []string
	for i := 0; s != ""; i++ {
		n := int(cuts[i%len(cuts)]%8) + 1
		if n > len(s) {
			n = len(s)
		}
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func addChatSeeds(f *testing.F) {
	f.Add(goodChat, []byte{1, 5, 9})
	f.Add("[[ ## answer ## ]]\na [[ link ]] b\n\n[[ ## completed ## ]]", []byte{2})
	f.Add("  [[ ## answer ## ]]   A  \r\n B \r\n\n[[ ## answer ## ]]\nC", []byte{0, 7})
	f.Add("pre\n[[ ## reasoning ## ]] r\x1cx\u2028[[ ## answer ## ]]\n\t\v é \n[[ ## n ## ]]\n3", []byte{4, 1})
	f.Add("[[ ## answer ## ]]\n[[ ## answe", []byte{1})
	f.Add("[[ ## answer ## ]]\n\xff\xc3[[ ## x", []byte{0})
}

// fuzzModelSig has pydantic model outputs: a model with a nested list of
// models, a Literal, a float, defaults and an optional model, and a list
// of it.
func fuzzModelSig(t testing.TB) *Signature {
	t.Helper()
	citation := &Model{Name: "Citation", Fields: []ModelField{
		{Name: "source", Type: Type{Name: "str"}},
		{Name: "page", Type: Type{Name: "int"}, Default: int64(1), HasDefault: true},
	}}
	report := &Model{Name: "Report", Doc: "A report.", Fields: []ModelField{
		{Name: "title", Type: Type{Name: "str"}, Desc: "The title"},
		{Name: "score", Type: Type{Name: "float"}},
		{Name: "kind", Type: Type{Name: "Literal", Values: []any{"a", "b"}}},
		{Name: "citations", Type: Type{Name: "list", Args: []Type{{Name: "Citation", Model: citation}}}},
		{Name: "extra", Type: Type{Name: "Union", Args: []Type{{Name: "Citation", Model: citation}, {Name: "NoneType"}}}, HasDefault: true},
		{Name: "tags", Type: Type{Name: "list", Args: []Type{{Name: "str"}}}, DefaultFactory: "list"},
	}}
	sig, err := NewSignature("", []Field{{Name: "question"}}, []Field{
		{Name: "report", Type: Type{Name: "Report", Model: report}},
		{Name: "reports", Type: Type{Name: "list", Args: []Type{{Name: "Report", Model: report}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// fuzzParseSpec is the plain signature the parse fuzzers try beside
// fuzzModelSig's: every scalar kind, a list and an Optional.
const fuzzParseSpec = "question -> reasoning, answer: str, n: int, tags: list[str], ok: Optional[bool]"

// checkParse fails the test if parse, on any of sigs, accepts completion
// but leaves an output out or parses one to a value that does not encode.
func checkParse(t *testing.T, parse func(*Signature, string) (*Map, error), completion string, sigs ...*Signature) {
	t.Helper()
	for _, sig := range sigs {
		out, err := parse(sig, completion)
		if err != nil {
			continue
		}
		if out.Len() != len(sig.outputs) {
			t.Fatalf("parsed %v, want every output", out.Keys())
		}
		if _, err := encodeJSON(out, styleCompact); err != nil {
			t.Fatalf("parsed outputs do not encode: %v", err)
		}
	}
}

func FuzzChatParse(f *testing.F) {
	addChatSeeds(f)
	f.Add("[[ ## report ## ]]\n{\"title\": \"t\", \"score\": \"1.5\", \"kind\": \"a\", \"citations\": [{\"source\": \"s\"}]}\n\n[[ ## reports ## ]]\n[]", []byte{3})
	f.Add("[[ ## report ## ]]\n{'title': 't', 'score': nan, 'kind': 'c', 'citations': [{'page': '2'}], 'extra': 'x'}", []byte{5})
	sig := fuzzSig(f, fuzzParseSpec)
	models := fuzzModelSig(f)
	f.Fuzz(func(t *testing.T, completion string, _ []byte) {
		checkParse(t, ChatAdapter{}.Parse, completion, sig, models)
	})
}

func FuzzJSONParse(f *testing.F) {
	f.Add(goodJSON)
	f.Add("```json\n{'reasoning': 'r', answer: \"a\", 'n': 3,}\n```")
	f.Add(`Sure! {"reasoning": "r", "answer": "a", "n": "4", "tags": ["x",], "ok": True`)
	f.Add(`[1, 2] {"answer": {"nested": [1, {"x": null}]}}`)
	f.Add(`{"reasoning": "\ud83d\ude00", "answer": "\u00e9", "n": 1e3, "tags": "['a', 'b']"}`)
	f.Add(`{"report": {"title": "t", "score": 1, "kind": "b", "citations": [{"source": "s", "page": 2.0}], "x": 1}, "reports": "[]"}`)
	f.Add(`{"report": {"title": 3, "score": Infinity, "citations": {}}, "reports": [{"extra": {}}]}`)
	sig := fuzzSig(f, fuzzParseSpec)
	models := fuzzModelSig(f)
	reportType := models.outputs[0].Type
	f.Fuzz(func(t *testing.T, completion string) {
		checkParse(t, JSONAdapter{}.Parse, completion, sig, models)
		_, _ = repairJSON(completion)
		_, _ = pyLiteralEval(completion)
		dec := json.NewDecoder(strings.NewReader(completion))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil {
			if err := reportType.CheckValue(v); err != nil {
				var ce *CheckError
				if !errors.As(err, &ce) {
					t.Fatalf("CheckValue error %T %v", err, err)
				}
			}
		}
	})
}

func FuzzStateLoad(f *testing.F) {
	for _, c := range realStateCases() {
		f.Add(readRealState(f, c.file))
	}
	qa, err := NewQA().MarshalState()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(qa)
	for _, name := range []string{"two_stage_demos.json", "two_stage_dump_state_demos.json"} {
		f.Add(readState(f, name))
	}
	f.Add([]byte(`{"predict.predict": {"demos": [{"question": 1.5e300, "answer": [true, null]}], "signature": {"instructions": "\t x\n  y", "fields": []}}, "metadata": {"dependency_versions": {"dspy": 3}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, base := range []*Program{NewQA(), cotProgram(t, "predict", "question -> answer"), twoStage(t)} {
			p, _, err := base.WithState(data, "fuzz.json")
			if err != nil {
				var se *StateError
				var me *StateMismatchError
				if p != nil || !errors.As(err, &se) && !errors.As(err, &me) {
					t.Fatalf("refused state: program %v, error %T %v", p, err, err)
				}
				continue
			}
			saved, err := p.MarshalState()
			if err != nil {
				t.Fatalf("marshal loaded state: %v", err)
			}
			again, _, err := base.WithState(saved, "saved.json")
			if err != nil {
				t.Fatalf("reload saved state: %v\n%s", err, saved)
			}
			resaved, err := again.MarshalState()
			if err != nil || string(resaved) != string(saved) {
				t.Fatalf("save is not stable:\n%s\n---\n%s", saved, resaved)
			}
			pred := p.Predictor().Predict
			ChatAdapter{}.Format(pred.Signature(), pred.Demos(), map[string]any{"question": "q"})
			JSONAdapter{}.Format(pred.Signature(), pred.Demos(), map[string]any{"question": "q"})
		}
	})
}

// FuzzStreamListener checks the exact chat listener against the parser for
// any completion and any chunking, and that DSPy's listener never panics.
func FuzzStreamListener(f *testing.F) {
	addChatSeeds(f)
	sigs := map[string]*Signature{"answer": fuzzSig(f, "question -> answer"), "reasoning": fuzzSig(f, "question -> reasoning")}
	f.Fuzz(func(t *testing.T, completion string, cuts []byte) {
		chunks := chunkText(completion, cuts)
		for field, sig := range sigs {
			var got strings.Builder
			s := newChatFieldStream(field, func(c string) {
				if c == "" {
					t.Fatal("empty chunk")
				}
				got.WriteString(c)
			})
			dspy := NewDSPyChatListener(field)
			for _, c := range chunks {
				s.write(c)
				dspy.Receive(c)
			}
			s.close()
			dspy.Finalize()
			out, err := ChatAdapter{}.Parse(sig, completion)
			want := ""
			if err == nil {
				v, _ := out.Get(field)
				want = v.(string)
			}
			if got.String() != want {
				t.Fatalf("%s: chunks %q join to %q, parsed value %q", field, chunks, got.String(), want)
			}
		}
	})
}

// FuzzJSONStream checks that a streaming run's chunks, after the last reset,
// always equal the parsed value, whatever the JSON listener made of the text.
func FuzzJSONStream(f *testing.F) {
	f.Add(goodJSON, []byte{3, 1})
	f.Add(`{"answer": "a\"b\\u00e9\ud83d\ude00", "answer": "dup", "reasoning": "r", "key_concepts": 1, "question_type": "x"}`, []byte{1})
	f.Add("```\n{'answer': 'single', \"reasoning\": \"r\", \"key_concepts\": \"k\", \"question_type\": \"t\"}", []byte{5})
	f.Fuzz(func(t *testing.T, completion string, cuts []byte) {
		var last strings.Builder
		opts := &RunOptions{
			StreamFields: []string{"answer"},
			OnChunk:      func(_, c string) { last.WriteString(c) },
			OnReset:      func(string) { last.Reset() },
		}
		lm := &scriptedLM{replies: []reply{{text: "no chat"}, {chunks: chunkText(completion, cuts)}, {chunks: chunkText(completion, cuts)}}}
		res, err := NewQA().Run(context.Background(), lm, map[string]any{"question": "q"}, opts)
		if err != nil {
			return
		}
		if v, _ := res.Outputs.Get("answer"); last.String() != v {
			t.Fatalf("streamed %q, parsed %q", last.String(), v)
		}
	})
}
