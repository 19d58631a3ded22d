package api

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/qaqueue/qaqueue/jobs"
)

// The one decoder of a job's spec, its client part (jobs.ClientSpec). Every
// edge that takes a job reads its body into a JSON object (numbers kept as
// written, json.Number) and hands it to its bodyForm's decode, which maps it
// onto the spec and validates it (jobs.ClientSpec.Validate,
// jobs.Options.Set):
//
//   - POST /v1/jobs takes the spec's own body, {"program"?, "inputs",
//     "options"?}, or the short form {"question", "stream"?, "no_cache"?};
//   - an item of a batch upload takes {"custom_id"?, "question"} or
//     {"custom_id"?, "inputs"}: the program and the options are the batch's;
//   - the seed's /predict, /predict/stream and /batch take {"question"},
//     ignoring other fields as its pydantic models did.
//
// Every /v1 edge refuses a field of the spec's server part
// (jobs.ServerFields), naming it; the seed's ignore it with every other
// unknown field, since their contract is the Python deployment's, and
// nothing a body says reaches the server part either way. A refusal is a *bodyError, which each edge words in its own
// error shape: fieldError (pydantic's, for /v1 and the seed) or an upload's
// problem. An option added to jobs.Options needs nothing here.

// bodyForm is the shape of the bodies an edge takes. Its forms list their
// fields as messages quote them, "?" marking an optional one.
type bodyForm struct {
	// short is the short form: the QA program's question, and the options
	// it sets as fields of their own. Nil: the edge does not take it.
	short []string
	// full is the spec's own body, or as much of it as the edge takes.
	// Nil: the edge does not take it.
	full []string
	// own are the fields the edge reads itself (an item's custom_id).
	own []string
	// ignoreUnknown ignores unknown fields, server fields among them, as the
	// seed's pydantic models did; otherwise one is refused, so that a typo
	// is not ignored.
	ignoreUnknown bool
}

var (
	// jobForm is POST /v1/jobs's. The short form keeps the two options it
	// had; an option added later is set in the spec's body.
	jobForm = bodyForm{short: []string{"question", "stream?", "no_cache?"}, full: []string{"program?", "inputs", "options?"}}
	// itemForm is an item's of a batch upload: the program and the options
	// are the batch's.
	itemForm = bodyForm{short: []string{"custom_id?", "question"}, full: []string{"custom_id?", "inputs"}, own: []string{"custom_id"}}
	// seedForm is the seed's: a body of /predict or /predict/stream, or an
	// item of /batch.
	seedForm = bodyForm{short: []string{"question"}, ignoreUnknown: true}
)

// String describes the bodies f takes, as messages quote them:
// "{question, stream?, no_cache?} or {program?, inputs, options?}".
func (f bodyForm) String() string {
	var forms []string
	for _, fields := range [][]string{f.short, f.full} {
		if fields != nil {
			forms = append(forms, "{"+strings.Join(fields, ", ")+"}")
		}
	}
	return strings.Join(forms, " or ")
}

// has reports whether form has the field named k.
func has(form []string, k string) bool {
	return slices.ContainsFunc(form, func(f string) bool { return strings.TrimSuffix(f, "?") == k })
}

// specRules are what decode checks a spec against: the limits, and how the
// program a spec names is found.
type specRules struct {
	lim jobs.Limits
	// resolve finds the program a spec names, "name[@alias]" (the
	// registry's Resolve, once per spec). Nil: only the built-in QA program
	// is known, as in the decoders' own tests.
	resolve func(ref string) (resolvedProgram, error)
	// batch, when set, is every spec's program: a batch's items run the
	// batch's, resolved when it was created.
	batch *resolvedProgram
}

// resolvedProgram is a program reference resolved: as sent, its version
// and its inputs.
type resolvedProgram struct {
	ref, version string
	program      jobs.Program
}

// builtinQA is the QA program with no pushed qa.
var builtinQA = resolvedProgram{ref: jobs.ProgramQA, program: jobs.QAProgram()}

// program resolves ref by r. An unknown program is a *jobs.SpecError
// naming "program" and what is known; other errors (Redis) are returned as
// they are.
func (r specRules) program(ref string) (resolvedProgram, error) {
	switch {
	case r.batch != nil:
		return *r.batch, nil
	case r.resolve != nil:
		return r.resolve(ref)
	case ref == jobs.ProgramQA:
		return builtinQA, nil
	}
	return resolvedProgram{}, &jobs.SpecError{Field: "program", Problem: jobs.ProblemUnknown, Known: []string{jobs.ProgramQA}}
}

// decode maps body m onto the client part of a spec, resolves its program
// by rules (returning its version) and validates the spec against it; the
// options m does not set keep their values in defaults. A body with no
// field of either form is read as the short form if the edge takes it, so
// that an empty body lacks its question. The error is a *bodyError, unless
// the spec could not be checked.
func (f bodyForm) decode(m map[string]any, rules specRules, defaults jobs.Options) (jobs.ClientSpec, string, error) {
	short, full := "", "" // the first field of each form m has
	for _, k := range slices.Sorted(maps.Keys(m)) {
		switch {
		case slices.Contains(f.own, k):
		case jobs.IsServerField(k) && !f.ignoreUnknown:
			return jobs.ClientSpec{}, "", &bodyError{path: []string{k}, kind: serverField, form: f}
		case has(f.short, k):
			short = cmp.Or(short, k)
		case has(f.full, k):
			full = cmp.Or(full, k)
		case !f.ignoreUnknown:
			return jobs.ClientSpec{}, "", &bodyError{path: []string{k}, kind: unknownField, form: f}
		}
	}
	if short != "" && full != "" {
		return jobs.ClientSpec{}, "", &bodyError{path: []string{full}, kind: mixedForms, other: short, form: f}
	}
	isShort := f.short != nil && full == ""
	c := jobs.ClientSpec{Program: jobs.ProgramQA, Inputs: jobs.Inputs{}, Options: defaults}
	var options map[string]any
	if isShort {
		options = f.shortSpec(m, &c)
	} else {
		var err *bodyError
		if options, err = fullSpec(m, &c); err != nil {
			err.form = f
			return jobs.ClientSpec{}, "", err
		}
	}
	if rules.batch != nil {
		c.Program = rules.batch.ref
	}
	p, err := rules.program(c.Program)
	if err != nil {
		return jobs.ClientSpec{}, "", specRefusal(err, isShort, f)
	}
	if err := c.Validate(rules.lim, p.program); err != nil {
		return jobs.ClientSpec{}, "", specRefusal(err, isShort, f)
	}
	if err := c.Options.Set(options); err != nil {
		return jobs.ClientSpec{}, "", specRefusal(err, isShort, f)
	}
	return c, p.version, nil
}

// shortSpec maps the short form onto c: its question is the QA program's,
// and the options it names are returned, to be set.
func (f bodyForm) shortSpec(m map[string]any, c *jobs.ClientSpec) map[string]any {
	options := map[string]any{}
	for k, v := range m {
		switch {
		case k == "question":
			c.Inputs[k] = v
		case has(f.short, k) && !slices.Contains(f.own, k):
			options[k] = v
		}
	}
	return options
}

// fullSpec maps the spec's own body onto c, and returns its options to be
// set.
func fullSpec(m map[string]any, c *jobs.ClientSpec) (map[string]any, *bodyError) {
	if raw, ok := m["program"]; ok {
		p, ok := raw.(string)
		if !ok {
			return nil, &bodyError{path: []string{"program"}, spec: &jobs.SpecError{Field: "program", Problem: jobs.ProblemNotString}}
		}
		c.Program = p
	}
	raw, ok := m["inputs"]
	if !ok {
		return nil, &bodyError{path: []string{"inputs"}, spec: &jobs.SpecError{Field: "inputs", Problem: jobs.ProblemMissing}}
	}
	if c.Inputs, ok = raw.(map[string]any); !ok {
		return nil, &bodyError{path: []string{"inputs"}, kind: notObject}
	}
	switch o := m["options"].(type) {
	case nil: // absent, or null: the defaults
		return nil, nil
	case map[string]any:
		return o, nil
	}
	return nil, &bodyError{path: []string{"options"}, kind: notObject}
}

// specRefusal is the bodyError of err, the spec's refusal (a
// *jobs.SpecError), naming the field as the body does: in the short form,
// the inputs are its question and the options fields of their own.
func specRefusal(err error, short bool, f bodyForm) error {
	var se *jobs.SpecError
	if !errors.As(err, &se) {
		return fmt.Errorf("check spec: %w", err)
	}
	path := strings.SplitN(se.Field, ".", 2) // inputs.X keeps X's own path ("a.b[1]")
	switch {
	case short && path[0] == "inputs":
		path = []string{"question"}
	case short && path[0] == "options":
		path = path[1:]
	}
	return &bodyError{path: path, spec: se, form: f}
}

// bodyProblem says what is wrong with a body, beyond what the spec says.
type bodyProblem int

const (
	// badSpec: the spec refused it (bodyError.spec).
	badSpec bodyProblem = iota
	// serverField: a field of the spec's server part.
	serverField
	// unknownField: a field no form of the edge has.
	unknownField
	// mixedForms: fields of both forms.
	mixedForms
	// notObject: the inputs or the options are not a JSON object.
	notObject
)

// bodyError is why a body does not make the client part of a spec.
type bodyError struct {
	// path names the field at fault as the body does: "question",
	// "stream", "inputs", "inputs.question", "options.stream", "owner".
	path []string
	kind bodyProblem
	// spec says what is wrong, for badSpec.
	spec *jobs.SpecError
	// other is the field of the other form, for mixedForms.
	other string
	// form is the edge's, quoted by messages.
	form bodyForm
}

func (e *bodyError) Error() string {
	fe := e.fieldError(nil)
	return fe.field() + ": " + fe.Msg
}

// serverFieldMsg refuses a field of the spec's server part.
const serverFieldMsg = "set by the server, not by a request"

// blankMsg is the validation message of a blank question.
const blankMsg = "String should not be blank (only whitespace)"

// requiredMsg is pydantic's words for a missing field, used by every input
// that names one.
const requiredMsg = "Field required"

// notObjectMsg is pydantic's words for a value that should be an object.
const notObjectMsg = "Input should be a valid dictionary or object to extract fields from"

// fieldError words e as pydantic would, located under loc (the body's:
// ["body"], or ["body", i] for an item of a list).
func (e *bodyError) fieldError(loc []any) fieldError {
	fe := fieldError{Loc: slices.Clone(loc)}
	for _, p := range e.path {
		fe.Loc = append(fe.Loc, p)
	}
	switch e.kind {
	case serverField:
		fe.Msg, fe.Type = serverFieldMsg, "server_field"
	case unknownField:
		fe.Msg, fe.Type = "Extra inputs are not permitted", "extra_forbidden"
	case mixedForms:
		fe.Msg, fe.Type = "not with "+e.other+": the body is either "+e.form.String(), "mixed_forms"
	case notObject:
		fe.Msg, fe.Type = notObjectMsg, "model_attributes_type"
	default:
		fe.Msg, fe.Type, fe.Ctx = pydanticSpec(e.spec)
	}
	return fe
}

// pydanticSpec words a spec's refusal as pydantic would.
func pydanticSpec(se *jobs.SpecError) (msg, typ string, ctx map[string]any) {
	switch se.Problem {
	case jobs.ProblemUnknown:
		if se.Field == "program" {
			return "Input should be " + quoteAll(se.Known), "literal_error", map[string]any{"expected": quoteAll(se.Known)}
		}
		return "Extra inputs are not permitted", "extra_forbidden", nil
	case jobs.ProblemMissing:
		return requiredMsg, "missing", nil
	case jobs.ProblemNotString:
		return "Input should be a valid string", "string_type", nil
	case jobs.ProblemEmpty:
		return "String should have at least 1 character", "string_too_short", map[string]any{"min_length": 1}
	case jobs.ProblemTooLong:
		return fmt.Sprintf("String should have at most %d characters", se.Limit), "string_too_long", map[string]any{"max_length": se.Limit}
	case jobs.ProblemBlank:
		return blankMsg, "string_blank", nil
	case jobs.ProblemTooLarge:
		return fmt.Sprintf("Inputs should take at most %d bytes as JSON (MAX_INPUT_BYTES), not %d", se.Limit, se.Got),
			"too_large", map[string]any{"max_bytes": se.Limit}
	case jobs.ProblemNotBool:
		return "Input should be a valid boolean", "bool_type", nil
	case jobs.ProblemType:
		return "expected " + se.Expected + ", got " + se.Actual, "type_error", map[string]any{"expected": se.Expected}
	}
	return strings.TrimPrefix(se.Error(), se.Field+": "), "value_error", nil
}

// problem words e as a batch upload's problem: the field and the reason.
// The reasons an upload gave before the spec are kept (requiredMsg and
// blankMsg from pydantic; "must be a string"; the limit by its variable).
func (e *bodyError) problem() (field, reason string) {
	field = strings.Join(e.path, ".")
	switch e.kind {
	case serverField:
		return field, serverFieldMsg
	case unknownField:
		return field, "unknown field (an item is " + e.form.String() + ")"
	case mixedForms:
		return field, "not with " + e.other + ": an item is " + e.form.String()
	case notObject:
		return field, "must be a JSON object"
	}
	switch e.spec.Problem {
	case jobs.ProblemMissing:
		return field, requiredMsg
	case jobs.ProblemEmpty, jobs.ProblemBlank:
		return field, blankMsg
	}
	return field, strings.TrimPrefix(e.spec.Error(), e.spec.Field+": ")
}

// quoteAll lists names as pydantic's literal_error does: 'a' or 'b'.
func quoteAll(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "'" + n + "'"
	}
	return strings.Join(q, " or ")
}
