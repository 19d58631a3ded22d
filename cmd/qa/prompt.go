package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/qaqueue/qaqueue/program"
	"github.com/qaqueue/qaqueue/programfile"
)

// programMaxBytes bounds a program file with its source and state: the
// default of PROGRAM_MAX_BYTES (issue 15), which the registry's push
// enforces; the CLI reads local files and needs no setting of its own.
const programMaxBytes = 8 << 20

// programFlags are the flags qa prompt and qa parse share: which signature,
// module, adapter and saved state to use, or which program file and stage.
type programFlags struct {
	signature    string
	instructions string
	module       string
	adapter      string
	state        string
	predictor    string
	program      string
	stage        string
}

func (pf *programFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&pf.signature, "signature", "", "DSPy string signature, e.g. \"question, context: list[str] -> answer\" (default: the QA program)")
	fs.StringVar(&pf.instructions, "instructions", "", "signature instructions (default: the QA program's, or DSPy's default for --signature)")
	fs.StringVar(&pf.module, "module", "", "predict or cot (default: cot for the QA program; for --signature, cot when the state has one field more than the signature, else predict)")
	fs.StringVar(&pf.adapter, "adapter", "chat", "chat or json")
	fs.StringVar(&pf.state, "state", "", "saved DSPy state file (module.save(..., save_program=False))")
	fs.StringVar(&pf.predictor, "predictor", "", "predictor key in the state file (default: its only predictor)")
	fs.StringVar(&pf.program, "program", "", "program file (YAML) whose folder holds its source and state; replaces --signature, --instructions, --module, --state and --predictor")
	fs.StringVar(&pf.stage, "stage", "", "with --program: the stage's key (default: the only stage)")
}

// loaded is what the flags resolve to.
type loaded struct {
	predict  *program.Predict
	adapter  program.Adapter
	warnings []string
	// stage is the stage's key with --program, else "".
	stage string
}

func (pf *programFlags) load() (*loaded, error) {
	var adapter program.Adapter
	switch pf.adapter {
	case "chat":
		adapter = program.ChatAdapter{}
	case "json":
		adapter = program.JSONAdapter{}
	default:
		return nil, fmt.Errorf("--adapter %q: want chat or json", pf.adapter)
	}
	if pf.program != "" {
		return pf.loadProgram(adapter)
	}
	if pf.stage != "" {
		return nil, errors.New("--stage names a stage of --program FILE")
	}
	var stateData []byte
	key := program.QAStateKey
	if pf.state != "" {
		data, err := os.ReadFile(pf.state)
		if err != nil {
			return nil, fmt.Errorf("read state: %w", err)
		}
		stateData = data
		if key, err = pf.pickPredictor(data); err != nil {
			return nil, err
		}
	}
	sig, module, err := pf.signatureAndModule(stateData, key)
	if err != nil {
		return nil, err
	}
	pred := program.NewPredict(sig)
	if module == "cot" {
		if pred, err = program.NewChainOfThought(sig); err != nil {
			return nil, err
		}
	}
	out := &loaded{predict: pred, adapter: adapter}
	if stateData == nil {
		return out, nil
	}
	// One stage of the file is shown; its other predictors are not read.
	if out.predict, out.warnings, err = pred.WithState(stateData, pf.state, key); err != nil {
		return nil, err
	}
	return out, nil
}

// loadProgram compiles the program file with its source and state and
// picks the stage's predictor, state applied.
func (pf *programFlags) loadProgram(adapter program.Adapter) (*loaded, error) {
	for _, f := range []struct{ name, value string }{
		{"--signature", pf.signature}, {"--instructions", pf.instructions}, {"--module", pf.module},
		{"--state", pf.state}, {"--predictor", pf.predictor},
	} {
		if f.value != "" {
			return nil, fmt.Errorf("%s cannot be combined with --program: the program file says it", f.name)
		}
	}
	b, err := programfile.Load(filepath.Dir(pf.program), filepath.Base(pf.program), programMaxBytes)
	if err != nil {
		return nil, err
	}
	c, err := programfile.Compile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pf.program, err)
	}
	st, pred, err := c.Stage(pf.stage)
	if err != nil {
		return nil, fmt.Errorf("--stage: %w", err)
	}
	return &loaded{predict: pred, adapter: adapter, warnings: c.Warnings, stage: st.Key}, nil
}

// checkInputs refuses, for a program's stage, inputs that lack one of the
// stage's input fields. Without --program the signature is the user's own
// and inputs render as given, as DSPy would render them.
func (l *loaded) checkInputs(inputs map[string]any) error {
	if l.stage == "" {
		return nil
	}
	fields := l.predict.Signature().Inputs()
	for _, f := range fields {
		if _, ok := inputs[f.Name]; !ok {
			names := make([]string, len(fields))
			for i, f := range fields {
				names[i] = f.Name
			}
			return fmt.Errorf("--inputs: missing input %q of stage %q (its inputs: %s)", f.Name, l.stage, strings.Join(names, ", "))
		}
	}
	return nil
}

// pickPredictor returns --predictor, or the file's only predictor key.
func (pf *programFlags) pickPredictor(data []byte) (string, error) {
	keys, err := program.StateKeys(data, pf.state)
	if err != nil {
		return "", err
	}
	if pf.predictor != "" {
		for _, k := range keys {
			if k == pf.predictor {
				return k, nil
			}
		}
		return "", fmt.Errorf("state %s: no predictor %q; choose --predictor from: %s", pf.state, pf.predictor, strings.Join(keys, ", "))
	}
	switch len(keys) {
	case 1:
		return keys[0], nil
	case 0:
		return "", fmt.Errorf("state %s: no predictors in the file", pf.state)
	}
	return "", fmt.Errorf("state %s: %d predictors, choose one with --predictor: %s", pf.state, len(keys), strings.Join(keys, ", "))
}

func (pf *programFlags) signatureAndModule(stateData []byte, key string) (*program.Signature, string, error) {
	module := pf.module
	switch module {
	case "", "predict", "cot":
	default:
		return nil, "", fmt.Errorf("--module %q: want predict or cot", module)
	}
	if pf.signature == "" {
		sig := program.QASignature()
		if pf.instructions != "" {
			sig = sig.WithInstructions(pf.instructions)
		}
		if module == "" {
			module = "cot"
		}
		return sig, module, nil
	}
	sig, err := program.ParseSignature(pf.signature, pf.instructions)
	if err != nil {
		return nil, "", err
	}
	if module == "" {
		module = "predict"
		if stateFieldCount(stateData, key) == len(sig.Fields())+1 {
			module = "cot"
		}
	}
	return sig, module, nil
}

// stateFieldCount is the number of saved fields of key's predictor, or -1.
func stateFieldCount(data []byte, key string) int {
	if data == nil {
		return -1
	}
	v, err := program.DecodeJSON(data)
	if err != nil {
		return -1
	}
	at := func(v any, k string) any {
		m, ok := v.(*program.Map)
		if !ok {
			return nil
		}
		x, _ := m.Get(k)
		return x
	}
	fields, ok := at(at(at(v, key), "signature"), "fields").([]any)
	if !ok {
		return -1
	}
	return len(fields)
}

func newFlagSet(e env, name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet("qa "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: qa %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, mapping flag errors to errUsage (the flag package
// has already explained them).
func parseFlags(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %q\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}

// runPrompt prints the exact messages DSPy would send for the inputs, as a
// JSON list of {"role", "content"} objects.
func runPrompt(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "prompt", "prompt [--signature SIG] [--instructions TEXT] [--module predict|cot] [--adapter chat|json] [--state FILE [--predictor KEY]] --inputs JSON|@FILE\n       qa prompt --program FILE [--stage KEY] [--adapter chat|json] --inputs JSON|@FILE")
	var pf programFlags
	pf.register(fs)
	inputsArg := fs.String("inputs", "", "input fields as a JSON object, or @FILE to read it from a file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *inputsArg == "" {
		fmt.Fprintln(e.stderr, "qa prompt: --inputs is required")
		fs.Usage()
		return errUsage
	}
	inputs, err := readInputs(*inputsArg)
	if err != nil {
		return err
	}
	l, err := pf.load()
	if err != nil {
		return err
	}
	if err := l.checkInputs(inputs); err != nil {
		return err
	}
	printWarnings(e, l.warnings)
	msgs := l.adapter.Format(l.predict.Signature(), l.predict.Demos(), inputs)
	out, err := program.EncodeJSONIndent(msgs)
	if err != nil {
		return fmt.Errorf("encode messages: %w", err)
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", out)
	return err
}

// runParse reads an LM completion on stdin and prints the parsed output
// fields as a JSON object of typed values in signature order; a completion
// that does not parse is an error with DSPy's message.
func runParse(ctx context.Context, e env, args []string) error {
	fs := newFlagSet(e, "parse", "parse [--signature SIG] [--instructions TEXT] [--module predict|cot] [--adapter chat|json] [--state FILE [--predictor KEY]] < completion\n       qa parse --program FILE [--stage KEY] [--adapter chat|json] < completion")
	var pf programFlags
	pf.register(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	l, err := pf.load()
	if err != nil {
		return err
	}
	printWarnings(e, l.warnings)
	text, err := io.ReadAll(e.stdin)
	if err != nil {
		return fmt.Errorf("read completion: %w", err)
	}
	fields, err := l.adapter.Parse(l.predict.Signature(), string(text))
	if err != nil {
		return err
	}
	out, err := program.EncodeJSONIndent(fields)
	if err != nil {
		return fmt.Errorf("encode fields: %w", err)
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", out)
	return err
}

// readInputs decodes --inputs: a JSON object, or @FILE holding one. Key
// order of nested objects is kept, as Python would keep it.
func readInputs(arg string) (map[string]any, error) {
	data := []byte(arg)
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("read inputs: %w", err)
		}
		data = b
	}
	v, err := program.DecodeJSON(data)
	if err != nil {
		return nil, fmt.Errorf("decode --inputs: %w", err)
	}
	obj, ok := v.(*program.Map)
	if !ok {
		return nil, errors.New("decode --inputs: want a JSON object")
	}
	inputs := make(map[string]any, obj.Len())
	for _, k := range obj.Keys() {
		inputs[k], _ = obj.Get(k)
	}
	return inputs, nil
}

func printWarnings(e env, warnings []string) {
	for _, w := range warnings {
		fmt.Fprintf(e.stderr, "warning: %s\n", w)
	}
}
