package program

import (
	"maps"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Adapter turns a signature, demos and inputs into chat messages and an LM
// completion back into output fields, as DSPy's adapters do.
type Adapter interface {
	// Name is DSPy's class name: "ChatAdapter" or "JSONAdapter".
	Name() string
	// Format builds the messages DSPy would send.
	Format(sig *Signature, demos []*Map, inputs map[string]any) []Message
	// Parse reads the output fields from a completion, in signature order;
	// failures are *ParseError.
	Parse(sig *Signature, completion string) (*Map, error)
}

// ChatAdapter is DSPy's default adapter: "[[ ## field ## ]]" sections.
type ChatAdapter struct{}

// JSONAdapter is DSPy's JSON adapter, the fallback when chat parsing fails.
type JSONAdapter struct{}

var (
	_ Adapter = ChatAdapter{}
	_ Adapter = JSONAdapter{}
)

// Texts DSPy puts in prompts.
const (
	structureIntro          = "All interactions will be structured in the following way, with the appropriate values filled in."
	incompleteDemoPrefix    = "This is an example of the task, though some input or output fields are not supplied."
	missingInDemo           = "Not supplied for this particular example. "
	missingInHistory        = "Not supplied for this conversation history message. "
	completedMarker         = "[[ ## completed ## ]]"
	objectiveIntro          = "In adhering to this structure, your objective is: "
	emptyResponseMessage    = "The LM returned an empty or null response."
	notJSONObjectMessage    = "LM response cannot be serialized to a JSON object."
	chatAdapterName         = "ChatAdapter"
	jsonAdapterName         = "JSONAdapter"
	objectiveIndent         = "        "
	typeNoteIndent          = "        "
	respondWithChatIntro    = "Respond with the corresponding output fields, starting with the field "
	respondWithChatClosing  = ", and then ending with the marker for `[[ ## completed ## ]]`."
	respondWithJSONIntro    = "Respond with a JSON object in the following order of fields: "
	jsonStructureInputsHead = "Inputs will have the following structure:"
	jsonStructureOutputHead = "Outputs will be a JSON object with the following fields."
)

// Name returns "ChatAdapter".
func (ChatAdapter) Name() string { return chatAdapterName }

// Format returns DSPy's ChatAdapter messages: the system message, the demo
// pairs (incomplete demos first), then the user message.
func (a ChatAdapter) Format(sig *Signature, demos []*Map, inputs map[string]any) []Message {
	return formatMessages(a, sig, demos, inputs)
}

// formatter is what formatMessages needs from an adapter.
type formatter interface {
	fieldStructure(sig *Signature) string
	userContent(sig *Signature, values valueSource, prefix string, mainRequest bool) string
	assistantContent(sig *Signature, values valueSource, missing string) string
}

// valueSource looks up field values in inputs or demos.
type valueSource interface {
	Get(k string) (any, bool)
}

type inputMap map[string]any

func (m inputMap) Get(k string) (any, bool) {
	v, ok := m[k]
	return v, ok
}

func formatMessages(f formatter, sig *Signature, demos []*Map, inputs map[string]any) []Message {
	system := fieldDescription(sig) + "\n" + f.fieldStructure(sig) + "\n" + taskDescription(sig)
	msgs := []Message{{Role: "system", Content: system}}
	var complete, incomplete []*Map
	for _, d := range demos {
		switch demoKind(sig, d) {
		case demoComplete:
			complete = append(complete, d)
		case demoIncomplete:
			incomplete = append(incomplete, d)
		}
	}
	for _, d := range incomplete {
		msgs = append(msgs,
			Message{Role: "user", Content: f.userContent(sig, d, incompleteDemoPrefix, false)},
			Message{Role: "assistant", Content: f.assistantContent(sig, d, missingInDemo)})
	}
	for _, d := range complete {
		msgs = append(msgs,
			Message{Role: "user", Content: f.userContent(sig, d, "", false)},
			Message{Role: "assistant", Content: f.assistantContent(sig, d, missingInHistory)})
	}
	return append(msgs, Message{Role: "user", Content: f.userContent(sig, modelInputs(sig, inputs), "", true)})
}

// modelInputs gives each input whose type has a model the value DSPy
// prints for the model the caller built: validated (fields in model order,
// defaults filled in, lax coercions applied), as model_dump gives it. A
// value that does not validate is left as it came. Demos are printed as
// they are stored, as DSPy prints a loaded state's dicts.
func modelInputs(sig *Signature, inputs map[string]any) inputMap {
	var out inputMap // a copy, made when a value changes
	for _, f := range sig.inputs {
		v, ok := inputs[f.Name]
		if !ok || !f.Type.hasModel() {
			continue
		}
		dumped, err := validate(toOrdered(v), f.Type)
		if err != nil {
			continue
		}
		if out == nil {
			out = maps.Clone(inputMap(inputs))
		}
		out[f.Name] = dumped
	}
	if out == nil {
		return inputMap(inputs)
	}
	return out
}

type demoClass int

const (
	demoDropped demoClass = iota
	demoIncomplete
	demoComplete
)

// demoKind classifies a demo as DSPy's format_demos does: complete when every
// field is present and not None; incomplete when at least one input and one
// output key are present (None counts); dropped otherwise.
func demoKind(sig *Signature, d *Map) demoClass {
	complete := true
	for _, f := range sig.Fields() {
		if v, ok := d.Get(f.Name); !ok || v == nil {
			complete = false
			break
		}
	}
	if complete {
		return demoComplete
	}
	hasIn, hasOut := false, false
	for _, f := range sig.inputs {
		hasIn = hasIn || d.Has(f.Name)
	}
	for _, f := range sig.outputs {
		hasOut = hasOut || d.Has(f.Name)
	}
	if hasIn && hasOut {
		return demoIncomplete
	}
	return demoDropped
}

// fieldDescription is "Your input fields are:…Your output fields are:…".
func fieldDescription(sig *Signature) string {
	return "Your input fields are:\n" + describeFields(sig.inputs) + "\n" +
		"Your output fields are:\n" + describeFields(sig.outputs)
}

// describeFields is get_field_description_string: numbered lines, the
// ${name} default shown as empty, the whole list stripped.
func describeFields(fields []Field) string {
	lines := make([]string, len(fields))
	for i, f := range fields {
		desc := f.Desc
		if desc == "${"+f.Name+"}" {
			desc = ""
		}
		lines[i] = strconv.Itoa(i+1) + ". `" + f.Name + "` (" + f.Type.String() + "): " + desc
		if c := constraintText(f.Constraints); c != "" {
			lines[i] += "\nConstraints: " + c
		}
	}
	return pyStrip(strings.Join(lines, "\n"))
}

// constraintPhrases is DSPy's PYDANTIC_CONSTRAINT_MAP.
var constraintPhrases = map[string]string{
	"gt":            "greater than: ",
	"ge":            "greater than or equal to: ",
	"lt":            "less than: ",
	"le":            "less than or equal to: ",
	"min_length":    "minimum length: ",
	"max_length":    "maximum length: ",
	"multiple_of":   "a multiple of the given number: ",
	"allow_inf_nan": "allow 'inf', '-inf', 'nan' values: ",
}

// constraintText is DSPy's _translate_pydantic_field_constraints: each
// known constraint's phrase and str(value), joined by ", ".
func constraintText(cs []Constraint) string {
	var parts []string
	for _, c := range cs {
		if p, ok := constraintPhrases[c.Name]; ok {
			parts = append(parts, p+pyStr(c.Value))
		}
	}
	return strings.Join(parts, ", ")
}

// taskDescription is the objective block: each instruction line after a
// newline and eight spaces.
func taskDescription(sig *Signature) string {
	var b strings.Builder
	b.WriteString(objectiveIntro)
	for _, line := range pySplitLines(dedent(sig.Instructions())) {
		b.WriteString("\n" + objectiveIndent + line)
	}
	return b.String()
}

// placeholder is translate_field_type: "{name}", plus a note on the
// expected format for non-str outputs.
func placeholder(f Field, output bool) string {
	p := "{" + f.Name + "}"
	if !output || f.Type.IsStr() {
		return p
	}
	var note string
	switch t := f.Type; t.Name {
	case "bool":
		note = "must be True or False"
	case "int", "float":
		note = "must be a single " + t.Name + " value"
	case "Literal":
		vals := make([]string, len(t.Values))
		for i, v := range t.Values {
			vals[i] = pyStr(v)
		}
		note = "must exactly match (no extra characters) one of: " + strings.Join(vals, "; ")
	default:
		note = "must adhere to the JSON schema: " + pyJSONDumps(typeFirst(t.jsonSchema()))
	}
	return p + typeNoteIndent + "# note: the value you produce " + note
}

// typeInfo is the " (must be formatted as a valid Python T)" suffix the
// final user message gives non-str outputs.
func typeInfo(f Field) string {
	if f.Type.IsStr() {
		return ""
	}
	return " (must be formatted as a valid Python " + f.Type.String() + ")"
}

// fieldBlocks joins "[[ ## name ## ]]\nvalue" blocks and strips the result,
// as format_field_with_value does.
func fieldBlocks(names []string, values []string) string {
	parts := make([]string, len(names))
	for i := range names {
		parts[i] = "[[ ## " + names[i] + " ## ]]\n" + values[i]
	}
	return pyStrip(strings.Join(parts, "\n\n"))
}

func (ChatAdapter) fieldStructure(sig *Signature) string {
	parts := []string{
		structureIntro,
		placeholderBlocks(sig.inputs, false),
		placeholderBlocks(sig.outputs, true),
		completedMarker + "\n",
	}
	return pyStrip(strings.Join(parts, "\n\n"))
}

func placeholderBlocks(fields []Field, output bool) string {
	names := make([]string, len(fields))
	values := make([]string, len(fields))
	for i, f := range fields {
		names[i], values[i] = f.Name, placeholder(f, output)
	}
	return fieldBlocks(names, values)
}

// inputBlocks formats the input fields present in values, skipping absent
// ones.
func inputBlocks(sig *Signature, values valueSource) []string {
	var parts []string
	for _, f := range sig.inputs {
		if v, ok := values.Get(f.Name); ok {
			parts = append(parts, "[[ ## "+f.Name+" ## ]]\n"+formatFieldValue(f.Type, v))
		}
	}
	return parts
}

func (ChatAdapter) userContent(sig *Signature, values valueSource, prefix string, mainRequest bool) string {
	parts := append([]string{prefix}, inputBlocks(sig, values)...)
	if mainRequest {
		reqs := make([]string, len(sig.outputs))
		for i, f := range sig.outputs {
			reqs[i] = "`[[ ## " + f.Name + " ## ]]`" + typeInfo(f)
		}
		parts = append(parts, respondWithChatIntro+strings.Join(reqs, ", then ")+respondWithChatClosing)
	}
	parts = append(parts, "")
	return pyStrip(strings.Join(parts, "\n\n"))
}

func (ChatAdapter) assistantContent(sig *Signature, values valueSource, missing string) string {
	names := make([]string, len(sig.outputs))
	vals := make([]string, len(sig.outputs))
	for i, f := range sig.outputs {
		names[i] = f.Name
		if v, ok := values.Get(f.Name); ok {
			vals[i] = formatFieldValue(f.Type, v)
		} else {
			vals[i] = missing
		}
	}
	return fieldBlocks(names, vals) + "\n\n" + completedMarker + "\n"
}

// headerPattern is DSPy's field header, matched at the start of a stripped
// line. \w is Unicode-aware in Python, hence the classes.
var headerPattern = regexp.MustCompile(`^\[\[ ## ([\p{L}\p{N}_]+) ## \]\]`)

// Parse reads "[[ ## name ## ]]" sections as DSPy's ChatAdapter.parse does:
// headers only at the start of a stripped line, the first occurrence wins,
// unknown headers and text before the first header are dropped, values are
// stripped and then typed.
func (ChatAdapter) Parse(sig *Signature, completion string) (*Map, error) {
	if completion == "" {
		return nil, &ParseError{Adapter: chatAdapterName, Response: completion,
			Expected: sig.OutputNames(), Message: emptyResponseMessage}
	}
	type section struct {
		header string
		has    bool
		lines  []string
	}
	sections := []section{{}}
	for _, line := range pySplitLines(completion) {
		stripped := pyStrip(line)
		if m := headerPattern.FindStringSubmatchIndex(stripped); m != nil {
			// DSPy applies the match end, an offset into the stripped line,
			// to the unstripped line; keep that quirk.
			end := utf8.RuneCountInString(stripped[:m[1]])
			rest := pyStrip(dropRunes(line, end))
			s := section{header: stripped[m[2]:m[3]], has: true}
			if rest != "" {
				s.lines = []string{rest}
			}
			sections = append(sections, s)
			continue
		}
		last := &sections[len(sections)-1]
		last.lines = append(last.lines, line)
	}
	fields := NewMap()
	for _, s := range sections {
		if !s.has || fields.Has(s.header) {
			continue
		}
		f, ok := sig.Output(s.header)
		if !ok {
			continue
		}
		text := pyStrip(strings.Join(s.lines, "\n"))
		v, err := parseValue(text, f.Type)
		if err != nil {
			return nil, &ParseError{Adapter: chatAdapterName, Response: completion, Expected: sig.OutputNames(),
				Message: "Failed to parse field " + f.Name + " with value " + text + " from the LM response. Error message: " + err.Error()}
		}
		fields.Set(f.Name, v)
	}
	return finishFields(chatAdapterName, sig, completion, fields)
}

// finishFields fills optional fields that are missing with None, requires
// every output field and returns them in signature order.
func finishFields(adapter string, sig *Signature, completion string, fields *Map) (*Map, error) {
	for _, f := range sig.outputs {
		if !fields.Has(f.Name) && f.Type.allowsNone() {
			fields.Set(f.Name, nil)
		}
	}
	if fields.Len() != len(sig.outputs) {
		// Parsed is never nil here: DSPy prints "[]" when no field parsed.
		parsed := append([]string{}, fields.Keys()...)
		return nil, &ParseError{Adapter: adapter, Response: completion, Expected: sig.OutputNames(), Parsed: parsed}
	}
	out := NewMap()
	for _, f := range sig.outputs {
		v, _ := fields.Get(f.Name)
		out.Set(f.Name, v)
	}
	return out, nil
}
