package program

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// The dependency versions this runtime stands in for. A saved state records
// the versions that wrote it; differences are warned about, as DSPy does.
const (
	compatPython      = "3.12"
	compatDSPy        = "3.3.1"
	compatCloudpickle = "3.1"
)

func currentVersions() *Map {
	m := NewMap()
	m.Set("python", compatPython)
	m.Set("dspy", compatDSPy)
	m.Set("cloudpickle", compatCloudpickle)
	return m
}

// StateKeys returns the predictor keys of a saved state (every top-level key
// but "metadata"), in file order. file names the state in errors.
func StateKeys(data []byte, file string) ([]string, error) {
	top, err := decodeState(data, file)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, k := range top.keys {
		if k != "metadata" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func decodeState(data []byte, file string) (*Map, error) {
	v, err := DecodeJSON(data)
	if err != nil {
		return nil, &StateError{File: file, Expected: "expected a JSON object (" + err.Error() + ")"}
	}
	top, ok := v.(*Map)
	if !ok {
		return nil, &StateError{File: file, Expected: "expected a JSON object at the top level, got " + jsonKind(v)}
	}
	return top, nil
}

// LoadStateFile reads a saved state from path and applies it; see
// WithState.
func (p *Program) LoadStateFile(path string) (*Program, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read state: %w", err)
	}
	return p.WithState(data, path)
}

// WithState returns a copy of p with the saved state in data applied, as
// DSPy's module.load does for a save_program=False JSON file written by
// DSPy 2.6 through 3.3, or for json.dumps(module.dump_state()) (no
// metadata): for each of p's predictors, the demos, traces, train and lm
// entries replace p's, the instructions replace the signature's, and the
// saved fields overwrite the prefix and description of the code's fields
// positionally (names and types always come from code). Demos are kept as
// saved, missing fields and extra keys included.
//
// Unlike DSPy, which zips predictors and fields and can leave a module half
// loaded (dspy#9589), a state made for another program is refused whole: a
// predictor in the state but not in p, one of p's predictors missing from
// the state, or a predictor whose saved fields differ in number or in name
// gives a *StateMismatchError naming every difference, and no program. A
// malformed state gives a *StateError. Version differences in the metadata
// are returned as warnings (DSPy's text), not errors. file names the state
// in errors. The copy's provenance is the sha256 of data.
func (p *Program) WithState(data []byte, file string) (*Program, []string, error) {
	top, err := decodeState(data, file)
	if err != nil {
		return nil, nil, err
	}
	warnings, err := checkVersions(top, file)
	if err != nil {
		return nil, nil, err
	}
	stateKeys, _ := StateKeys(data, file)
	diffs := p.predictorDiffs(top, stateKeys)
	out := &Program{provenance: sha256Hex(data)}
	for _, np := range p.preds {
		raw, ok := top.Get(np.Key)
		if !ok {
			continue // named by predictorDiffs
		}
		loaded, diff, err := loadPredict(np.Predict, raw, file, np.Key)
		if err != nil {
			return nil, nil, err
		}
		if diff != "" {
			diffs = append(diffs, fmt.Sprintf("predictor %q: %s", np.Key, diff))
			continue
		}
		out.preds = append(out.preds, NamedPredict{Key: np.Key, Predict: loaded})
	}
	if len(diffs) > 0 {
		return nil, nil, &StateMismatchError{File: file, Differences: diffs}
	}
	return out, warnings, nil
}

// WithState returns a copy of p with the state saved for predictor key in
// data applied, as Program.WithState applies it to each predictor; the
// file's other predictors are not read. It serves tools that look at one
// stage of a saved program (qa prompt --predictor); a served program loads
// whole, with Program.WithState. Errors and warnings are Program.WithState's.
func (p *Predict) WithState(data []byte, file, key string) (*Predict, []string, error) {
	top, err := decodeState(data, file)
	if err != nil {
		return nil, nil, err
	}
	warnings, err := checkVersions(top, file)
	if err != nil {
		return nil, nil, err
	}
	raw, ok := top.Get(key)
	if !ok || key == "metadata" {
		keys, _ := StateKeys(data, file)
		return nil, nil, &StateMismatchError{File: file,
			Differences: []string{fmt.Sprintf("predictor %q is not in the state (it has %s)", key, quoteList(keys))}}
	}
	loaded, diff, err := loadPredict(p, raw, file, key)
	if err != nil {
		return nil, nil, err
	}
	if diff != "" {
		return nil, nil, &StateMismatchError{File: file, Differences: []string{fmt.Sprintf("predictor %q: %s", key, diff)}}
	}
	return loaded, warnings, nil
}

// predictorDiffs names the state's predictors p lacks, then p's predictors
// the state lacks.
func (p *Program) predictorDiffs(top *Map, stateKeys []string) []string {
	progKeys := make([]string, len(p.preds))
	for i, np := range p.preds {
		progKeys[i] = np.Key
	}
	var diffs []string
	for _, k := range stateKeys {
		if _, ok := p.Predict(k); !ok {
			diffs = append(diffs, fmt.Sprintf("predictor %q is not in the program (it has %s)", k, quoteList(progKeys)))
		}
	}
	for _, k := range progKeys {
		if !top.Has(k) {
			diffs = append(diffs, fmt.Sprintf("predictor %q is not in the state (it has %s)", k, quoteList(stateKeys)))
		}
	}
	return diffs
}

func quoteList(keys []string) string {
	if len(keys) == 0 {
		return "no predictors"
	}
	q := make([]string, len(keys))
	for i, k := range keys {
		q[i] = fmt.Sprintf("%q", k)
	}
	return strings.Join(q, ", ")
}

// checkVersions compares metadata.dependency_versions with this runtime's,
// returning DSPy's mismatch warnings. A state without metadata (written with
// json.dumps(module.dump_state())) has nothing to compare.
func checkVersions(top *Map, file string) ([]string, error) {
	mv, ok := top.Get("metadata")
	if !ok {
		return nil, nil
	}
	meta, isMap := mv.(*Map)
	if !isMap {
		return nil, &StateError{File: file, Key: "metadata", Expected: "expected an object with \"dependency_versions\""}
	}
	dv, _ := meta.Get("dependency_versions")
	versions, ok := dv.(*Map)
	if !ok {
		return nil, &StateError{File: file, Key: "metadata.dependency_versions", Expected: "expected an object of version strings"}
	}
	current := currentVersions()
	var warnings []string
	for _, k := range versions.keys {
		cur, ok := current.Get(k)
		if !ok {
			return nil, &StateError{File: file, Key: "metadata.dependency_versions." + k,
				Expected: "expected one of \"python\", \"dspy\", \"cloudpickle\""}
		}
		saved := pyStr(versions.values[k])
		if saved != cur {
			warnings = append(warnings, fmt.Sprintf("There is a mismatch of %s version between saved model and current environment. "+
				"You saved with `%s==%s`, but now you have `%s==%s`. This might cause errors or performance downgrade on the loaded model, "+
				"please consider loading the model in the same environment as the saving environment.", k, k, saved, k, cur))
		}
	}
	return warnings, nil
}

// loadPredict is Predict.load_state. A state whose fields differ from
// base's gives a description of the difference and no Predict.
func loadPredict(base *Predict, raw any, file, key string) (*Predict, string, error) {
	errAt := func(sub, expected string) error {
		k := key
		if sub != "" {
			k += "." + sub
		}
		return &StateError{File: file, Key: k, Expected: expected}
	}
	st, ok := raw.(*Map)
	if !ok {
		return nil, "", errAt("", "expected a predictor state object, got "+jsonKind(raw))
	}
	if st.Has("extended_signature") {
		return nil, "", errAt("extended_signature", "Loading extended_signature is no longer supported in DSPy 2.6+")
	}
	if st.Has("signature_instructions") || st.Has("signature_prefix") {
		return nil, "", errAt("signature_instructions", "expected a DSPy 2.6+ state with a \"signature\" object (DSPy 2.4 format is not supported)")
	}
	out := *base
	for _, name := range []string{"traces", "train"} {
		if v, ok := st.Get(name); ok {
			list, ok := v.([]any)
			if !ok {
				return nil, "", errAt(name, "expected a list, got "+jsonKind(v))
			}
			if name == "traces" {
				out.traces = list
			} else {
				out.train = list
			}
		}
	}
	if v, ok := st.Get("demos"); ok {
		list, ok := v.([]any)
		if !ok {
			return nil, "", errAt("demos", "expected a list of demo objects, got "+jsonKind(v))
		}
		out.demos = make([]*Map, len(list))
		for i, d := range list {
			m, ok := d.(*Map)
			if !ok {
				return nil, "", errAt(fmt.Sprintf("demos[%d]", i), "expected a demo object, got "+jsonKind(d))
			}
			out.demos[i] = m
		}
	}
	sig, diff, err := loadSignature(base.sig, st, errAt)
	if err != nil || diff != "" {
		return nil, diff, err
	}
	out.sig = sig
	out.lm = nil
	if v, ok := st.Get("lm"); ok && pyTruthy(v) {
		out.lm = v
	}
	return &out, "", nil
}

func loadSignature(base *Signature, st *Map, errAt func(sub, expected string) error) (*Signature, string, error) {
	v, ok := st.Get("signature")
	sigState, isMap := v.(*Map)
	if !ok || !isMap {
		return nil, "", errAt("signature", "expected an object with \"instructions\" and \"fields\"")
	}
	iv, _ := sigState.Get("instructions")
	instructions, ok := iv.(string)
	if !ok {
		return nil, "", errAt("signature.instructions", "expected a string, got "+jsonKind(iv))
	}
	fv, _ := sigState.Get("fields")
	list, ok := fv.([]any)
	if !ok {
		return nil, "", errAt("signature.fields", "expected a list of {\"prefix\", \"description\"} objects, got "+jsonKind(fv))
	}
	texts := make([]fieldText, len(list))
	for i, e := range list {
		m, ok := e.(*Map)
		at := fmt.Sprintf("signature.fields[%d]", i)
		if !ok {
			return nil, "", errAt(at, "expected a {\"prefix\", \"description\"} object, got "+jsonKind(e))
		}
		prefix, ok1 := m.values["prefix"].(string)
		desc, ok2 := m.values["description"].(string)
		if !ok1 || !ok2 {
			return nil, "", errAt(at, "expected string \"prefix\" and \"description\"")
		}
		texts[i] = fieldText{prefix: prefix, desc: desc}
	}
	if diff := fieldsDiff(base.Fields(), texts); diff != "" {
		return nil, diff, nil
	}
	sig, err := base.WithInstructions(instructions).withFieldText(texts)
	if err != nil {
		return nil, "", errAt("signature.fields", err.Error())
	}
	return sig, "", nil
}

// fieldsDiff describes how saved fields differ from the code's: in number,
// or in a name the state shows. A state records no names, but DSPy's
// defaults show them: the description "${name}" and the prefix
// infer_prefix(name). Texts the project or an optimizer wrote (COPRO
// rewrites the last prefix) show no name and are not compared.
func fieldsDiff(code []Field, saved []fieldText) string {
	names := make([]string, len(saved))
	same := len(saved) == len(code)
	for i, t := range saved {
		name, known := t.name()
		names[i] = name
		if !known {
			names[i] = strconv.Quote(t.prefix)
		}
		if same && known && name != code[i].Name && t.prefix != code[i].Prefix && t.desc != code[i].Desc {
			same = false
		}
	}
	if same {
		return ""
	}
	codeNames := strings.Join(fieldNames(code), ", ")
	if len(saved) != len(code) {
		return fmt.Sprintf("the state has %d fields (%s), the program %d (%s)", len(saved), strings.Join(names, ", "), len(code), codeNames)
	}
	return fmt.Sprintf("the state has fields (%s), the program (%s)", strings.Join(names, ", "), codeNames)
}

// name returns the field name the saved texts show, if they show one.
func (t fieldText) name() (string, bool) {
	if inner, ok := strings.CutPrefix(t.desc, "${"); ok {
		if name, ok := strings.CutSuffix(inner, "}"); ok && name != "" {
			return name, true
		}
	}
	label, ok := strings.CutSuffix(t.prefix, ":")
	if !ok || label == "" {
		return "", false
	}
	name := strings.ToLower(strings.ReplaceAll(label, " ", "_"))
	if inferPrefix(name) != t.prefix {
		return "", false
	}
	return name, true
}

func fieldNames(fields []Field) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.Name
	}
	return names
}

// pyTruthy is Python truthiness of a decoded JSON value.
func pyTruthy(v any) bool {
	switch t := v.(type) {
	case nil:
		return false
	case bool:
		return t
	case string:
		return t != ""
	case int64:
		return t != 0
	case float64:
		return t != 0
	case []any:
		return len(t) > 0
	case *Map:
		return t.Len() > 0
	}
	return true
}

// MarshalState returns the program's state as DSPy 3.3.1's
// module.save(path, save_program=False) writes it: orjson with a 2-space
// indent, keys in DSPy's order, raw UTF-8, a trailing newline, and metadata
// naming the versions this runtime stands in for.
func (p *Program) MarshalState() ([]byte, error) {
	top := NewMap()
	for _, np := range p.preds {
		top.Set(np.Key, np.Predict.dumpState())
	}
	meta := NewMap()
	meta.Set("dependency_versions", currentVersions())
	top.Set("metadata", meta)
	b, err := encodeJSON(top, styleOrjsonIndent)
	if err != nil {
		return nil, fmt.Errorf("marshal state: %w", err)
	}
	return append(b, '\n'), nil
}

// dumpState is Predict.dump_state.
func (p *Predict) dumpState() *Map {
	st := NewMap()
	st.Set("traces", orEmpty(p.traces))
	st.Set("train", orEmpty(p.train))
	demos := make([]any, len(p.demos))
	for i, d := range p.demos {
		demos[i] = d
	}
	st.Set("demos", demos)
	sig := NewMap()
	sig.Set("instructions", p.sig.Instructions())
	fields := make([]any, 0, len(p.sig.inputs)+len(p.sig.outputs))
	for _, f := range p.sig.Fields() {
		fm := NewMap()
		fm.Set("prefix", f.Prefix)
		fm.Set("description", f.Desc)
		fields = append(fields, fm)
	}
	sig.Set("fields", fields)
	st.Set("signature", sig)
	st.Set("lm", p.lm)
	return st
}

func orEmpty(l []any) []any {
	if l == nil {
		return []any{}
	}
	return l
}
