package pricing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The fields of one model's entry in LM_PRICES, in USD per million tokens.
const (
	FieldInput            = "input"
	FieldOutput           = "output"
	FieldCachedInput      = "cached_input"
	FieldBatchInput       = "batch_input"
	FieldBatchOutput      = "batch_output"
	FieldBatchCachedInput = "batch_cached_input"
)

var fields = []string{FieldInput, FieldOutput, FieldCachedInput, FieldBatchInput, FieldBatchOutput, FieldBatchCachedInput}

// MaxUSD is the highest price LM_PRICES accepts, in USD per million tokens
// ($1 a token): far above any model's, and low enough that a cost stays
// exact in an int64 of micro-dollars for up to 9.2e12 tokens.
const MaxUSD = 1_000_000

// Error is one problem with LM_PRICES: the model it is under and, when it is
// about one price, the field.
type Error struct {
	// Model is the entry's key, as written in LM_PRICES.
	Model string
	// Field is the price's field (input, ...); empty when the problem is
	// the model's entry as a whole.
	Field string
	// Problem says what is expected and what was found.
	Problem string
}

// Error returns `model "m": field "f" problem`.
func (e *Error) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("model %q: %s", e.Model, e.Problem)
	}
	return fmt.Sprintf("model %q: field %q %s", e.Model, e.Field, e.Problem)
}

// Parse reads an LM_PRICES value: a JSON object of model → {input, output,
// cached_input, batch_input, batch_output, batch_cached_input}, in USD per
// million tokens, converted once to micro-dollars (rounded to the nearest).
// Each model given replaces its [Default] entry whole; the others keep
// theirs. input and output are required; a missing cached_input is the
// input price, a missing batch_input or batch_output half the live one, and
// a missing batch_cached_input half of cached_input when that is given, else
// batch_input. An empty s is the default table.
//
// The error joins every problem (errors.Join), each an [*Error] naming the
// model and field: a value that is not a number, negative or above
// [MaxUSD], an unknown or missing field, an empty model name, a model or
// field given twice.
func Parse(s string) (Table, error) {
	t := Default()
	if strings.TrimSpace(s) == "" {
		return t, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &raw); err != nil || raw == nil {
		problem := `must be a JSON object of model → prices in USD per million tokens, such as {"openai/gpt-4o-mini": {"input": 0.15, "output": 0.6}}`
		if err != nil {
			problem += ": " + err.Error()
		}
		return Table{}, errors.Join(errors.New(problem))
	}
	var errs []error
	for _, model := range duplicateKeys([]byte(s)) {
		errs = append(errs, &Error{Model: model, Problem: "is given more than once"})
	}
	for _, model := range slices.Sorted(maps.Keys(raw)) {
		p, entryErrs := parseEntry(model, raw[model])
		errs = append(errs, entryErrs...)
		if len(entryErrs) == 0 {
			t.prices[model] = p
		}
	}
	if len(errs) > 0 {
		return Table{}, errors.Join(errs...)
	}
	return t, nil
}

// parseEntry reads one model's prices, or returns its problems.
func parseEntry(model string, raw json.RawMessage) (Price, []error) {
	if p, n := splitModel(model); strings.TrimSpace(n) == "" || (strings.Contains(model, "/") && p == "") {
		return Price{}, []error{&Error{Model: model, Problem: "is not a model name such as openai/gpt-4o-mini"}}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return Price{}, []error{&Error{Model: model, Problem: `must be an object such as {"input": 0.15, "output": 0.6}`}}
	}
	var errs []error
	for _, k := range duplicateKeys(raw) {
		errs = append(errs, &Error{Model: model, Field: k, Problem: "is given more than once"})
	}
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		if !slices.Contains(fields, k) {
			errs = append(errs, &Error{Model: model, Field: k, Problem: "is unknown; the fields are " + strings.Join(fields, ", ")})
		}
	}
	micros := map[string]int64{}
	for _, f := range fields {
		v, given := obj[f]
		if !given {
			if f == FieldInput || f == FieldOutput {
				errs = append(errs, &Error{Model: model, Field: f, Problem: "is required"})
			}
			continue
		}
		m, err := toMicros(v)
		if err != nil {
			errs = append(errs, &Error{Model: model, Field: f, Problem: err.Error()})
			continue
		}
		micros[f] = m
	}
	if len(errs) > 0 {
		return Price{}, errs
	}
	return complete(micros), nil
}

// duplicateKeys lists, in order, the keys the JSON object obj names more
// than once: the standard decoder would keep the last one silently, and
// drop a price the operator wrote.
func duplicateKeys(obj []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(obj))
	if _, err := dec.Token(); err != nil {
		return nil
	}
	seen := map[string]bool{}
	var dups []string
	for dec.More() {
		tok, err := dec.Token()
		var skip json.RawMessage
		if err != nil || dec.Decode(&skip) != nil {
			return dups
		}
		k, _ := tok.(string)
		if seen[k] && !slices.Contains(dups, k) {
			dups = append(dups, k)
		}
		seen[k] = true
	}
	return dups
}

// toMicros converts a price in USD per million tokens to micro-dollars per
// million, rounded to the nearest.
func toMicros(v any) (int64, error) {
	num, ok := v.(json.Number)
	if !ok {
		return 0, fmt.Errorf("must be a number of USD per million tokens, got %s", jsonText(v))
	}
	// Out of float64's range, f is ±Inf with err set: its sign still says
	// which limit the price is past.
	f, err := strconv.ParseFloat(num.String(), 64)
	switch {
	case f < 0:
		return 0, fmt.Errorf("must not be negative, got %s", num)
	case err != nil || f > MaxUSD:
		return 0, fmt.Errorf("must be at most %d USD per million tokens, got %s", MaxUSD, num)
	}
	return int64(math.Round(f * 1e6)), nil
}

// jsonText quotes a value for an error, or names its kind when it is long.
func jsonText(v any) string {
	if b, err := json.Marshal(v); err == nil && len(b) <= 40 {
		return string(b)
	}
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return "a long string"
}

// complete fills the prices LM_PRICES may leave out (see [Parse]).
func complete(m map[string]int64) Price {
	p := Price{Input: m[FieldInput], Output: m[FieldOutput]}
	p.CachedInput = valueOr(m, FieldCachedInput, p.Input)
	p.BatchInput = valueOr(m, FieldBatchInput, half(p.Input))
	p.BatchOutput = valueOr(m, FieldBatchOutput, half(p.Output))
	batchCached := p.BatchInput
	if _, ok := m[FieldCachedInput]; ok {
		batchCached = half(p.CachedInput)
	}
	p.BatchCachedInput = valueOr(m, FieldBatchCachedInput, batchCached)
	return p
}

func valueOr(m map[string]int64, k string, def int64) int64 {
	if v, ok := m[k]; ok {
		return v
	}
	return def
}

// half is 50%, rounded half up to a whole micro-dollar per million.
func half(micros int64) int64 { return micros/2 + micros%2 }

// UnmarshalText parses an LM_PRICES value into t, as [Parse] does, for
// config's environment parser.
func (t *Table) UnmarshalText(b []byte) error {
	parsed, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = parsed
	return nil
}

// String returns the LM_PRICES value that gives t: its entries that differ
// from [Default], as JSON in USD per million tokens, every field written;
// "" for the default table. Parse(t.String()) is t.
func (t Table) String() string {
	def := Default()
	diff := map[string]Price{}
	for model, p := range t.prices {
		if d, ok := def.prices[model]; !ok || d != p {
			diff[model] = p
		}
	}
	if len(diff) == 0 {
		return ""
	}
	b, err := marshalPrices(diff)
	if err != nil {
		return fmt.Sprintf("<unprintable prices: %v>", err) // unreachable: numbers always marshal
	}
	return string(b)
}

// MarshalJSON writes the whole table, defaults included, as LM_PRICES
// writes it: model → {input, output, ...} in USD per million tokens.
func (t Table) MarshalJSON() ([]byte, error) {
	return marshalPrices(t.prices)
}

// usdPrice is one entry as LM_PRICES writes it.
type usdPrice struct {
	Input            json.Number `json:"input"`
	Output           json.Number `json:"output"`
	CachedInput      json.Number `json:"cached_input"`
	BatchInput       json.Number `json:"batch_input"`
	BatchOutput      json.Number `json:"batch_output"`
	BatchCachedInput json.Number `json:"batch_cached_input"`
}

func marshalPrices(prices map[string]Price) ([]byte, error) {
	out := make(map[string]usdPrice, len(prices))
	for model, p := range prices {
		out[model] = usdPrice{
			Input: usd(p.Input), Output: usd(p.Output), CachedInput: usd(p.CachedInput),
			BatchInput: usd(p.BatchInput), BatchOutput: usd(p.BatchOutput), BatchCachedInput: usd(p.BatchCachedInput),
		}
	}
	return json.Marshal(out) // map keys sorted: a stable value
}

// usd writes micro-dollars as an exact decimal of dollars (2500000 → 2.5),
// so the value parses back to the same micro-dollars.
func usd(micros int64) json.Number {
	s := strconv.FormatInt(micros/1e6, 10)
	if frac := micros % 1e6; frac != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", frac), "0")
	}
	return json.Number(s)
}
