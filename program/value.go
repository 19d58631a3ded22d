package program

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// formatFieldValue is DSPy's format_field_value: a list given to a str
// field becomes a numbered list; containers become json.dumps; anything
// else Python's str().
func formatFieldValue(t Type, v any) string {
	v = toOrdered(v)
	if list, ok := v.([]any); ok && t.IsStr() {
		return formatListValue(list)
	}
	switch v.(type) {
	case []any, *Map:
		return pyJSONDumps(v)
	}
	return pyStr(v)
}

// formatListValue is DSPy's _format_input_list_field_value.
func formatListValue(list []any) string {
	switch len(list) {
	case 0:
		return "N/A"
	case 1:
		return formatBlob(pyStr(list[0]))
	}
	lines := make([]string, len(list))
	for i, e := range list {
		lines[i] = fmt.Sprintf("[%d] %s", i+1, formatBlob(pyStr(e)))
	}
	return strings.Join(lines, "\n")
}

// formatBlob is DSPy's _format_blob: «text», or a fenced, indented block
// when the text has a newline or guillemets.
func formatBlob(s string) string {
	if !strings.ContainsAny(s, "\n«»") {
		return "«" + s + "»"
	}
	return "«««\n    " + strings.ReplaceAll(s, "\n", "\n    ") + "\n»»»"
}

// errValue marks a value that does not fit its field's type where no
// DSPy or pydantic text is reproduced (tuples of the wrong length, unions).
var errValue = errors.New("invalid value")

// pyTuple is a tuple ast.literal_eval read ("1,234" is (1, 234)):
// pydantic takes it for a list, and names it a tuple in its errors.
type pyTuple []any

// valueError is the ValueError DSPy's parse_value raises (a Literal that
// does not match): its text is the exception's str().
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// pydanticDocs is where pydantic 2.13's error text points.
const pydanticDocs = "https://errors.pydantic.dev/2.13/v/"

// validationError is pydantic's ValidationError from TypeAdapter(T): its
// Error() is str(exc), byte for byte, every error pydantic collects (all
// fields of a model, all items of a list) in order.
type validationError struct {
	title string // T as pydantic names it: "int", "dict[str,int]", "Report"
	lines []lineError
}

// lineError is one entry of ValidationError.errors().
type lineError struct {
	loc   []locPart // the path into the value: fields, dict keys, list indexes
	kind  string    // the error type: "int_parsing"
	msg   string
	input any
	// want is the type expected where the error is, got what came when
	// more than its JSON kind helps (CheckValue says them).
	want, got string
}

// locPart is one step of an error's location.
type locPart struct {
	key string
	// index marks a list index; union marks a union member, which pydantic
	// names in its location but which is no step into the value (union
	// holds the union's type).
	index bool
	union string
}

func (e *validationError) Error() string {
	var b strings.Builder
	if len(e.lines) == 1 {
		b.WriteString("1 validation error for " + e.title)
	} else {
		fmt.Fprintf(&b, "%d validation errors for %s", len(e.lines), e.title)
	}
	for _, l := range e.lines {
		b.WriteByte('\n')
		if len(l.loc) > 0 {
			keys := make([]string, len(l.loc))
			for i, p := range l.loc {
				keys[i] = p.key
			}
			b.WriteString(strings.Join(keys, ".") + "\n")
		}
		fmt.Fprintf(&b, "  %s [type=%s, input_value=%s, input_type=%s]\n", l.msg, l.kind, truncateRepr(pyRepr(l.input)), pyTypeName(l.input))
		b.WriteString("    For further information visit " + pydanticDocs + l.kind)
	}
	return b.String()
}

// absorb adds err's lines under loc and reports true, or reports false for
// an error that is not a validationError (which ends validation).
func (e *validationError) absorb(err error, loc locPart) bool {
	ve, ok := err.(*validationError)
	if !ok {
		return false
	}
	for _, l := range ve.lines {
		l.loc = append([]locPart{loc}, l.loc...)
		e.lines = append(e.lines, l)
	}
	return true
}

// truncateRepr shortens an input's repr as pydantic-core does in error
// text: over 50 bytes, the first 25 and the last 24, on rune boundaries.
func truncateRepr(r string) string {
	if len(r) <= 50 {
		return r
	}
	head, tail := 25, len(r)-24
	for head > 0 && !utf8.RuneStart(r[head]) {
		head--
	}
	for tail < len(r) && !utf8.RuneStart(r[tail]) {
		tail++
	}
	return r[:head] + "..." + r[tail:]
}

// invalid is the validationError for input; validateValue names the type.
func invalid(kind, msg string, input any) error {
	return &validationError{lines: []lineError{{kind: kind, msg: msg, input: input}}}
}

// pyTypeName is Python's type(v).__name__ of a decoded value.
func pyTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "NoneType"
	case string:
		return "str"
	case bool:
		return "bool"
	case int64, BigInt:
		return "int"
	case float64:
		return "float"
	case []any:
		return "list"
	case *Map:
		return "dict"
	case pyTuple:
		return "tuple"
	}
	return fmt.Sprintf("%T", v)
}

// parseValue is DSPy's parse_value for LM text (str fields keep the text;
// Literals match leniently; other types go through lenient JSON, then a
// Python literal, then the raw text, and are validated).
func parseValue(text string, t Type) (any, error) {
	if t.IsStr() {
		return text, nil
	}
	if t.Name == "Literal" {
		return parseLiteral(text, t)
	}
	if t.isUnion() && t.allowsNone() && unionHasStr(t) {
		return validateValue(text, t)
	}
	candidate, ok := repairJSON(text)
	if !ok || (candidate == "" && text != "") {
		if lit, err := pyLiteralEval(text); err == nil {
			candidate = lit
		} else {
			candidate = text
		}
	}
	return validateValue(candidate, t)
}

// parseJSONValue is parse_value for a value that JSON already decoded: a
// non-string is validated as is; str fields take Python's str() of it.
func parseJSONValue(v any, t Type) (any, error) {
	if s, ok := v.(string); ok {
		return parseValue(s, t)
	}
	if t.IsStr() {
		return pyStr(v), nil
	}
	if t.Name == "Literal" {
		return parseLiteralValue(v, t)
	}
	return validateValue(v, t)
}

func unionHasStr(t Type) bool {
	for _, a := range t.Args {
		if a.IsStr() {
			return true
		}
	}
	return false
}

func parseLiteral(text string, t Type) (any, error) {
	if v, ok := literalMember(text, t); ok {
		return v, nil
	}
	v := pyStrip(text)
	if (strings.HasPrefix(v, "Literal[") || strings.HasPrefix(v, "str[")) && strings.HasSuffix(v, "]") {
		v = v[strings.IndexByte(v, '[')+1 : len(v)-1]
	}
	if len(v) > 1 && v[0] == v[len(v)-1] && (v[0] == '"' || v[0] == '\'') {
		v = v[1 : len(v)-1]
	}
	if m, ok := literalMember(v, t); ok {
		return m, nil
	}
	return nil, &valueError{pyRepr(text) + " is not one of " + literalTuple(t)}
}

func parseLiteralValue(v any, t Type) (any, error) {
	for _, a := range t.Values {
		if pyEqual(a, v) {
			return a, nil
		}
	}
	return nil, &valueError{pyRepr(v) + " is not one of " + literalTuple(t)}
}

func literalMember(s string, t Type) (any, bool) {
	for _, a := range t.Values {
		if as, ok := a.(string); ok && as == s {
			return a, true
		}
	}
	return nil, false
}

func literalTuple(t Type) string {
	parts := make([]string, len(t.Values))
	for i, v := range t.Values {
		parts[i] = pyRepr(v)
	}
	if len(parts) == 1 {
		return "(" + parts[0] + ",)"
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// pyEqual is Python == on decoded JSON scalars (1 == 1.0 == True).
func pyEqual(a, b any) bool {
	fa, aNum := pyNumber(a)
	fb, bNum := pyNumber(b)
	if aNum && bNum {
		return fa == fb
	}
	return a == b
}

func pyNumber(v any) (float64, bool) {
	switch t := v.(type) {
	case int64:
		return float64(t), true
	case float64:
		return t, true
	case bool:
		if t {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// validateValue is pydantic's lax TypeAdapter(T).validate_python for the
// types signatures use.
func validateValue(v any, t Type) (any, error) {
	out, err := validate(v, t)
	if ve, ok := err.(*validationError); ok {
		ve.title = pydanticTitle(t)
	}
	return out, err
}

// pydanticTitle is the name pydantic-core gives a validator in its errors:
// "list[Report]", "dict[str,int]", "nullable[int]", "union[int,str]",
// "literal['a','b']", "tuple[int, str]".
func pydanticTitle(t Type) string {
	if t.Model != nil {
		return t.Model.Name
	}
	args := func(sep string, ts []Type) string {
		parts := make([]string, len(ts))
		for i, a := range ts {
			parts[i] = pydanticTitle(a)
		}
		return strings.Join(parts, sep)
	}
	switch t.name() {
	case "Union", "UnionType":
		var others []Type
		for _, a := range t.Args {
			if a.Name != "NoneType" {
				others = append(others, a)
			}
		}
		switch {
		case len(others) == len(t.Args):
			return "union[" + args(",", t.Args) + "]"
		case len(others) == 1:
			return "nullable[" + pydanticTitle(others[0]) + "]"
		default:
			return "nullable[union[" + args(",", others) + "]]"
		}
	case "Literal":
		parts := make([]string, len(t.Values))
		for i, v := range t.Values {
			parts[i] = pyRepr(v)
		}
		return "literal[" + strings.Join(parts, ",") + "]"
	case "tuple":
		return t.String()
	case "list", "set", "frozenset", "dict":
		if len(t.Args) > 0 {
			return t.name() + "[" + args(",", t.Args) + "]"
		}
	}
	return strings.ReplaceAll(t.String(), ", ", ",")
}

// validate is validateValue without the type's name in its errors.
func validate(v any, t Type) (any, error) {
	out, err := validateAs(v, t)
	if ve, ok := err.(*validationError); ok {
		for i := range ve.lines {
			if ve.lines[i].want == "" {
				ve.lines[i].want = t.String()
			}
		}
	}
	return out, err
}

func validateAs(v any, t Type) (any, error) {
	if _, isTuple := v.(pyTuple); !isTuple || t.name() == "Any" {
		v = toOrdered(v) // a tuple becomes a list
	}
	if t.Model != nil {
		return validateModel(v, t.Model)
	}
	switch t.name() {
	case "Any":
		return v, nil
	case "str":
		if s, ok := v.(string); ok {
			return s, nil
		}
	case "NoneType":
		if v == nil {
			return nil, nil
		}
	case "int":
		return validateInt(v)
	case "float":
		return validateFloat(v)
	case "bool":
		return validateBool(v)
	case "Literal":
		return validateLiteral(v, t)
	case "list", "tuple", "set", "frozenset":
		list, ok := v.([]any)
		if tup, isTuple := v.(pyTuple); isTuple {
			list, ok = tup, true
		}
		if !ok {
			break
		}
		out := make([]any, len(list))
		errs := &validationError{}
		for i, e := range list {
			et := Type{Name: "Any"}
			switch {
			case t.name() == "tuple" && len(t.Args) > 0 && !(len(t.Args) == 2 && t.Args[1].Name == "..."):
				if len(t.Args) != len(list) {
					return nil, fmt.Errorf("%w: expected %d items, got %d", errValue, len(t.Args), len(list))
				}
				et = t.Args[i]
			case len(t.Args) > 0:
				et = t.Args[0]
			}
			ev, err := validate(e, et)
			if err != nil {
				if !errs.absorb(err, locPart{key: strconv.Itoa(i), index: true}) {
					return nil, err
				}
				continue
			}
			out[i] = ev
		}
		if len(errs.lines) > 0 {
			return nil, errs
		}
		return out, nil
	case "dict":
		m, ok := v.(*Map)
		if !ok {
			break
		}
		vt := Type{Name: "Any"}
		if len(t.Args) == 2 {
			vt = t.Args[1]
		}
		out := NewMap()
		errs := &validationError{}
		for _, k := range m.keys {
			ev, err := validate(m.values[k], vt)
			if err != nil {
				if !errs.absorb(err, locPart{key: k}) {
					return nil, err
				}
				continue
			}
			out.Set(k, ev)
		}
		if len(errs.lines) > 0 {
			return nil, errs
		}
		return out, nil
	case "Union", "UnionType":
		return validateUnion(v, t)
	}
	if kind, msg, ok := typeMismatch(t.name()); ok {
		return nil, invalid(kind, msg, v)
	}
	return nil, fmt.Errorf("%w: %s is not a valid %s", errValue, pyRepr(v), t)
}

// typeMismatch is pydantic's error for a value of the wrong kind.
func typeMismatch(name string) (kind, msg string, ok bool) {
	switch name {
	case "str":
		return "string_type", "Input should be a valid string", true
	case "NoneType":
		return "none_required", "Input should be None", true
	case "list":
		return "list_type", "Input should be a valid list", true
	case "dict":
		return "dict_type", "Input should be a valid dictionary", true
	}
	return "", "", false
}

// validateUnion is pydantic's union validation. A union with None is
// pydantic's nullable: None, else the other member's own validation (its
// errors unprefixed). Otherwise, roughly smart mode: an exact type match
// first, then each member in order; when all fail, every member's errors,
// each under the member's name.
func validateUnion(v any, t Type) (any, error) {
	var others []Type
	for _, a := range t.Args {
		if a.Name != "NoneType" {
			others = append(others, a)
		}
	}
	if len(others) < len(t.Args) {
		if v == nil {
			return nil, nil
		}
		if len(others) == 1 {
			return validate(v, others[0])
		}
	}
	for _, a := range others {
		if exactKind(v, a) {
			return validate(v, a)
		}
	}
	errs := &validationError{}
	for _, a := range others {
		r, err := validate(v, a)
		if err == nil {
			return r, nil
		}
		if !errs.absorb(err, locPart{key: pydanticTitle(a), union: t.String()}) {
			return nil, fmt.Errorf("%w: %s is not a valid %s", errValue, pyRepr(v), t)
		}
	}
	return nil, errs
}

// validateLiteral is pydantic's Literal validation (a Literal inside
// another type; DSPy reads a Literal field itself more leniently, see
// parseLiteral).
func validateLiteral(v any, t Type) (any, error) {
	for _, a := range t.Values {
		if pyEqual(a, v) {
			return a, nil
		}
	}
	parts := make([]string, len(t.Values))
	for i, a := range t.Values {
		parts[i] = pyRepr(a)
	}
	want := parts[len(parts)-1]
	if len(parts) > 1 {
		want = strings.Join(parts[:len(parts)-1], ", ") + " or " + want
	}
	return nil, invalid("literal_error", "Input should be "+want, v)
}

func exactKind(v any, t Type) bool {
	switch v.(type) {
	case nil:
		return t.Name == "NoneType"
	case string:
		return t.IsStr()
	case bool:
		return t.Name == "bool"
	case int64, BigInt:
		return t.Name == "int"
	case float64:
		return t.Name == "float"
	case []any:
		return t.Name == "list"
	case *Map:
		return t.Name == "dict"
	}
	return false
}

func validateInt(v any) (any, error) {
	switch t := v.(type) {
	case int64, BigInt:
		return t, nil
	case bool:
		if t {
			return int64(1), nil
		}
		return int64(0), nil
	case float64:
		if t == math.Trunc(t) && !math.IsInf(t, 0) && math.Abs(t) < 1<<63 {
			return int64(t), nil
		}
		if t != math.Trunc(t) && !math.IsNaN(t) {
			return nil, invalid("int_from_float", "Input should be a valid integer, got a number with a fractional part", v)
		}
		return nil, fmt.Errorf("%w: %s is not a valid integer", errValue, pyRepr(v))
	case string:
		s := strings.ReplaceAll(pyStrip(t), "_", "")
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return i, nil
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return int64(f), nil
		}
		return nil, invalid("int_parsing", "Input should be a valid integer, unable to parse string as an integer", v)
	}
	return nil, invalid("int_type", "Input should be a valid integer", v)
}

// validateFloat is pydantic's lax float, except that a value that is not
// finite (nan, inf, an overflow) is refused with pydantic's finite_number
// error (allow_inf_nan=False): a result is JSON, which has no such number.
func validateFloat(v any) (any, error) {
	f, err := laxFloat(v)
	if err != nil {
		return nil, err
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, invalid("finite_number", "Input should be a finite number", v)
	}
	return f, nil
}

func laxFloat(v any) (float64, error) {
	switch t := v.(type) {
	case float64:
		return t, nil
	case int64:
		return float64(t), nil
	case BigInt:
		f, _ := strconv.ParseFloat(string(t), 64)
		return f, nil
	case bool:
		if t {
			return 1, nil
		}
		return 0, nil
	case string:
		s := strings.ToLower(pyStrip(t))
		switch s {
		case "inf", "infinity", "+inf", "+infinity":
			return math.Inf(1), nil
		case "-inf", "-infinity":
			return math.Inf(-1), nil
		case "nan":
			return math.NaN(), nil
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		if err == nil || (errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0)) {
			return f, nil // Python's float() overflows to inf
		}
		return 0, invalid("float_parsing", "Input should be a valid number, unable to parse string as a number", v)
	}
	return 0, invalid("float_type", "Input should be a valid number", v)
}

func validateBool(v any) (any, error) {
	switch t := v.(type) {
	case bool:
		return t, nil
	case int64:
		if t == 0 || t == 1 {
			return t == 1, nil
		}
	case float64:
		if t == 0 || t == 1 {
			return t == 1, nil
		}
	case string:
		switch strings.ToLower(pyStrip(t)) {
		case "1", "on", "t", "true", "y", "yes":
			return true, nil
		case "0", "off", "f", "false", "n", "no":
			return false, nil
		}
		return nil, invalid("bool_parsing", "Input should be a valid boolean, unable to interpret input", v)
	}
	if _, isNumber := pyNumber(v); isNumber {
		return nil, invalid("bool_parsing", "Input should be a valid boolean, unable to interpret input", v)
	}
	return nil, invalid("bool_type", "Input should be a valid boolean", v)
}
