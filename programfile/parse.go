package programfile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// MaxYAMLBytes is the largest program file Parse reads (256 KiB). Together
// with the parser's own nesting limit it bounds the node tree, which is
// linear in the input: aliases are refused before anything expands them.
const MaxYAMLBytes = 256 << 10

// maxDepth is the deepest node a program file has, counting its top-level
// mapping as 1: stages (2) → a stage (3) → its inputs (4) → a binding (5).
// The walk refuses anything deeper before any value is decoded, so no
// recursion below runs deeper than this. Nesting inside the parser itself
// is bounded by go.yaml.in/yaml/v3's scanner, which refuses more than
// 10,000 levels without recursing while it reads, so its own tree building
// recurses at most that deep.
const maxDepth = 5

// maxKeyBytes bounds a stage key, which appears in messages, bindings and
// a job's stage records.
const maxKeyBytes = 128

var namePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{0,62}$`)

// identPattern is a Python identifier as DSPy's field names are (ASCII).
var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// File is a program file as written, checked by Parse. Its JSON encoding
// (Canonical) is the file's canonical form.
type File struct {
	// Name matches ^[a-z][a-z0-9-]{0,62}$.
	Name string `json:"name"`
	// Description is free text.
	Description string `json:"description,omitempty"`
	// Source is the relative path of the Python file with the signature
	// classes, if any stage names a class.
	Source string `json:"source,omitempty"`
	// State is the relative path of the saved state (DSPy's
	// module.save(path, save_program=False)), if any.
	State string `json:"state,omitempty"`
	// Stages run in order; at least one.
	Stages []FileStage `json:"stages"`
	// Outputs lists the program's outputs as "field" or "STAGE_KEY.field";
	// empty means every stage's outputs.
	Outputs []string `json:"outputs,omitempty"`

	at        pos
	outputsAt []pos
}

// FileStage is one stage as written.
type FileStage struct {
	// Key is the predictor's name in DSPy's named_predictors() and in the
	// state file, e.g. "extract.predict".
	Key string `json:"key"`
	// Module is the DSPy module the stage runs.
	Module Module `json:"module"`
	// Signature is a class name of Source or a DSPy string signature
	// ("question -> answer: int").
	Signature string `json:"signature"`
	// Inputs binds stage input fields explicitly: "input.X" (a program
	// input) or "STAGE_KEY.X" (an earlier stage's output).
	Inputs map[string]string `json:"inputs,omitempty"`

	at          pos
	sigAt       pos
	inputsAt    map[string]pos // each binding's value
	inputKeysAt map[string]pos // each binding's key
}

// Canonical returns the canonical form of the file: compact JSON with the
// keys in a fixed order, bindings sorted by field and no HTML escaping (a
// signature's "->" stays as written), so comments, key order, quoting and
// flow or block style do not change it.
func (f *File) Canonical() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(f); err != nil {
		return nil, fmt.Errorf("encode program file: %w", err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Parse reads a program file and checks its shape: at most MaxYAMLBytes;
// one YAML document; no anchors, aliases, tags, unknown or repeated keys;
// nesting no deeper than the file's shape; the name pattern; unique,
// non-empty stage keys; a supported module; relative source and state
// paths without "..". Signatures and bindings are resolved by Build.
func Parse(data []byte) (*File, error) {
	if len(data) > MaxYAMLBytes {
		return nil, &Error{Msg: fmt.Sprintf("the file is %d bytes, over the limit of %d (MaxYAMLBytes, 256 KiB)", len(data), MaxYAMLBytes)}
	}
	root, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	if err := checkNodes(root, "", 1); err != nil {
		return nil, err
	}
	return decodeFile(root)
}

// parseDocument returns the content node of the file's only document.
func parseDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Msg: "the file is empty"}
		}
		return nil, &Error{Msg: "read YAML: " + strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, &Error{Msg: "read YAML: " + strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
	default:
		return nil, errAt(&next, "", "a second YAML document; a program file is one document")
	}
	if len(doc.Content) != 1 {
		return nil, errAt(&doc, "", "the file has no content")
	}
	return doc.Content[0], nil
}

// checkNodes refuses anchors, aliases, explicit tags and nodes deeper than
// maxDepth, before anything is decoded. The node kinds make this exact: an
// alias is its own kind and never expanded here, an anchor is a field of
// the node that defines it, and an explicit tag sets TaggedStyle (the
// non-specific "!" tag only forces a string and is harmless).
func checkNodes(n *yaml.Node, path string, depth int) error {
	switch {
	case n.Kind == yaml.AliasNode:
		return errAt(n, path, "aliases (*%s) are not allowed", n.Value)
	case n.Anchor != "":
		return errAt(n, path, "anchors (&%s) are not allowed", n.Anchor)
	case n.Tag == "!!merge":
		return errAt(n, path, "merge keys (<<) are not allowed")
	case n.Style&yaml.TaggedStyle != 0:
		return errAt(n, path, "tags (%s) are not allowed", n.Tag)
	case depth > maxDepth:
		return errAt(n, path, "nested deeper than a program file goes (%d levels)", maxDepth)
	}
	for i, c := range n.Content {
		p := path
		switch n.Kind {
		case yaml.SequenceNode:
			p = path + "[" + strconv.Itoa(i) + "]"
		case yaml.MappingNode:
			p = joinPath(path, n.Content[i&^1].Value)
		}
		if err := checkNodes(c, p, depth+1); err != nil {
			return err
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if !identPattern.MatchString(key) {
		key = strconv.Quote(key)
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

// mapping calls fn for each key of a mapping node, refusing non-string
// and repeated keys.
func mapping(n *yaml.Node, path string, fn func(key string, k, v *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return errAt(n, path, "must be a mapping, not %s", kindName(n))
	}
	seen := make(map[string]*yaml.Node, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag != "!!str" {
			return errAt(k, path, "keys must be strings, not %s", kindName(k))
		}
		if first, ok := seen[k.Value]; ok {
			return errAt(k, joinPath(path, k.Value), "repeated key (first at %d:%d)", first.Line, first.Column)
		}
		seen[k.Value] = k
		if err := fn(k.Value, k, v); err != nil {
			return err
		}
	}
	return nil
}

// str returns a string scalar's value. Other scalars (numbers, booleans,
// null) are refused rather than converted, so what is stored is what was
// meant; quoting makes any of them a string.
func str(n *yaml.Node, path string) (string, error) {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		return "", errAt(n, path, "must be a string, not %s", kindName(n))
	}
	return n.Value, nil
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "null"
		case "!!bool":
			return "a boolean (" + n.Value + ")"
		case "!!int", "!!float":
			return "a number (" + n.Value + ")"
		case "!!str":
			return "a string"
		}
		return n.Tag + " (" + n.Value + ")"
	}
	return "an alias"
}

func decodeFile(root *yaml.Node) (*File, error) {
	f := &File{at: posOf(root)}
	var haveName, haveStages bool
	err := mapping(root, "", func(key string, k, v *yaml.Node) error {
		var err error
		switch key {
		case "name":
			haveName = true
			f.Name, err = decodeName(v)
		case "description":
			f.Description, err = str(v, key)
		case "source", "state":
			var p string
			if p, err = relPath(v, key); key == "source" {
				f.Source = p
			} else {
				f.State = p
			}
		case "stages":
			haveStages = true
			f.Stages, err = decodeStages(v)
		case "outputs":
			err = decodeOutputs(f, v)
		default:
			err = errAt(k, joinPath("", key), "unknown key (name, description, source, state, stages, outputs)")
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case !haveName:
		return nil, errAt(root, "name", "required")
	case !haveStages:
		return nil, errAt(root, "stages", "required")
	}
	for i, s := range f.Stages {
		if f.Source == "" && !isStringSignature(s.Signature) {
			return nil, s.sigAt.errorf("stages["+strconv.Itoa(i)+"].signature", "%q names a class, but the file has no source", s.Signature)
		}
	}
	return f, nil
}

func decodeName(v *yaml.Node) (string, error) {
	name, err := str(v, "name")
	if err != nil {
		return "", err
	}
	if !namePattern.MatchString(name) {
		return "", errAt(v, "name", "%q does not match ^[a-z][a-z0-9-]{0,62}$", name)
	}
	return name, nil
}

// relPath checks a path relative to the program file's folder: slash
// separated, no "..", ".", empty or absolute forms, no backslashes (which
// would mean a separator on one system and a character on another).
func relPath(v *yaml.Node, key string) (string, error) {
	p, err := str(v, key)
	if err != nil {
		return "", err
	}
	switch {
	case p == "":
		return "", errAt(v, key, "must not be empty (leave the key out)")
	case strings.HasPrefix(p, "/") || (len(p) > 1 && p[1] == ':'):
		return "", errAt(v, key, "%q is absolute; paths are relative to the program file's folder", p)
	case strings.Contains(p, `\`):
		return "", errAt(v, key, "%q has a backslash; separate folders with /", p)
	case p == ".." || strings.HasPrefix(p, "../") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/.."):
		return "", errAt(v, key, "%q leaves the program file's folder (..)", p)
	case !fs.ValidPath(p) || p == ".":
		return "", errAt(v, key, "%q is not a clean relative path (like dir/file.py)", p)
	}
	return p, nil
}

func decodeStages(v *yaml.Node) ([]FileStage, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, errAt(v, "stages", "must be a list, not %s", kindName(v))
	}
	if len(v.Content) == 0 {
		return nil, errAt(v, "stages", "must list at least one stage")
	}
	stages := make([]FileStage, 0, len(v.Content))
	keys := map[string]pos{}
	for i, n := range v.Content {
		path := "stages[" + strconv.Itoa(i) + "]"
		s, keyAt, err := decodeStage(n, path)
		if err != nil {
			return nil, err
		}
		if first, ok := keys[s.Key]; ok {
			return nil, keyAt.errorf(path+".key", "%q is the key of an earlier stage too (%d:%d)", s.Key, first.line, first.col)
		}
		keys[s.Key] = keyAt
		stages = append(stages, s)
	}
	return stages, nil
}

func decodeStage(n *yaml.Node, path string) (FileStage, pos, error) {
	s := FileStage{at: posOf(n)}
	var keyAt pos
	var haveKey, haveModule, haveSig bool
	err := mapping(n, path, func(key string, k, v *yaml.Node) error {
		p := path + "." + key
		var err error
		switch key {
		case "key":
			haveKey, keyAt = true, posOf(v)
			s.Key, err = stageKey(v, p)
		case "module":
			haveModule = true
			var m string
			if m, err = str(v, p); err == nil {
				if s.Module, err = ParseModule(m); err != nil {
					err = errAt(v, p, "%s", err.Error())
				}
			}
		case "signature":
			haveSig, s.sigAt = true, posOf(v)
			s.Signature, err = signatureText(v, p)
		case "inputs":
			err = decodeBindings(&s, v, p)
		default:
			err = errAt(k, joinPath(path, key), "unknown key (key, module, signature, inputs)")
		}
		return err
	})
	switch {
	case err != nil:
		return s, keyAt, err
	case !haveKey:
		return s, keyAt, errAt(n, path+".key", "required")
	case !haveModule:
		return s, keyAt, errAt(n, path+".module", "required (%s)", moduleList())
	case !haveSig:
		return s, keyAt, errAt(n, path+".signature", "required")
	}
	return s, keyAt, nil
}

func moduleList() string {
	names := []string{}
	for _, m := range Modules() {
		names = append(names, string(m))
	}
	return strings.Join(names, ", ")
}

// stageKey checks a stage key: DSPy's predictor names are attribute paths
// ("extract.predict", "steps[0].predict"), so printable ASCII without
// spaces covers them. "input" is reserved for bindings to program inputs.
func stageKey(v *yaml.Node, path string) (string, error) {
	key, err := str(v, path)
	if err != nil {
		return "", err
	}
	switch {
	case key == "":
		return "", errAt(v, path, "must not be empty")
	case len(key) > maxKeyBytes:
		return "", errAt(v, path, "is %d bytes, over %d", len(key), maxKeyBytes)
	case key == "input":
		return "", errAt(v, path, `"input" is reserved for bindings to program inputs (input.X)`)
	}
	for _, c := range []byte(key) {
		if c <= ' ' || c > '~' {
			return "", errAt(v, path, "%q has a character other than printable ASCII without spaces", key)
		}
	}
	return key, nil
}

// signatureText checks that a signature is a class name or a string
// signature; Build resolves it.
func signatureText(v *yaml.Node, path string) (string, error) {
	sig, err := str(v, path)
	if err != nil {
		return "", err
	}
	if !isStringSignature(sig) && !identPattern.MatchString(sig) {
		return "", errAt(v, path, `%q is neither a class name nor a string signature ("inputs -> outputs")`, sig)
	}
	return sig, nil
}

// isStringSignature tells a DSPy string signature from a class name.
func isStringSignature(sig string) bool { return strings.Contains(sig, "->") }

func decodeBindings(s *FileStage, v *yaml.Node, path string) error {
	s.Inputs = map[string]string{}
	s.inputsAt = map[string]pos{}
	s.inputKeysAt = map[string]pos{}
	return mapping(v, path, func(field string, k, b *yaml.Node) error {
		p := joinPath(path, field)
		if !identPattern.MatchString(field) {
			return errAt(k, p, "%q is not a field name", field)
		}
		ref, err := str(b, p)
		if err != nil {
			return err
		}
		if _, _, ok := splitRef(ref); !ok {
			return errAt(b, p, "%q is not a binding (input.FIELD or STAGE_KEY.FIELD)", ref)
		}
		s.Inputs[field], s.inputsAt[field], s.inputKeysAt[field] = ref, posOf(b), posOf(k)
		return nil
	})
}

func decodeOutputs(f *File, v *yaml.Node) error {
	if v.Kind != yaml.SequenceNode {
		return errAt(v, "outputs", "must be a list, not %s", kindName(v))
	}
	if len(v.Content) == 0 {
		return errAt(v, "outputs", "must list at least one output (leave the key out for every stage's outputs)")
	}
	seen := map[string]bool{}
	for i, n := range v.Content {
		p := "outputs[" + strconv.Itoa(i) + "]"
		out, err := str(n, p)
		if err != nil {
			return err
		}
		if _, _, ok := splitRef(out); !ok && !identPattern.MatchString(out) {
			return errAt(n, p, "%q is neither a field name nor STAGE_KEY.FIELD", out)
		}
		if seen[out] {
			return errAt(n, p, "%q is listed twice", out)
		}
		seen[out] = true
		f.Outputs = append(f.Outputs, out)
		f.outputsAt = append(f.outputsAt, posOf(n))
	}
	return nil
}

// splitRef splits "STAGE_KEY.FIELD" or "input.FIELD" at the last dot,
// since stage keys contain dots and field names do not.
func splitRef(ref string) (stage, field string, ok bool) {
	i := strings.LastIndexByte(ref, '.')
	if i <= 0 || !identPattern.MatchString(ref[i+1:]) {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}
