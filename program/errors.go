package program

import (
	"fmt"
	"strings"
)

// ParseError is DSPy's AdapterParseError: the LM answered but its text does
// not hold every output field (or a value does not fit its type). Retrying
// the same prompt rarely helps, so callers treat it as permanent. Find it
// with errors.As.
type ParseError struct {
	// Adapter is "ChatAdapter" or "JSONAdapter".
	Adapter string
	// Response is the LM text (for JSON, the object extracted from it).
	Response string
	// Expected lists the signature's output fields.
	Expected []string
	// Parsed lists the fields parsed, in order; nil when parsing stopped
	// before fields were compared.
	Parsed []string
	// Message is the optional leading explanation.
	Message string
}

// Error returns DSPy's message text, byte for byte.
func (e *ParseError) Error() string {
	var b strings.Builder
	if e.Message != "" {
		b.WriteString(e.Message + "\n\n")
	}
	fmt.Fprintf(&b, "Adapter %s failed to parse the LM response. \n\n", e.Adapter)
	fmt.Fprintf(&b, "LM Response: %s \n\n", e.Response)
	fmt.Fprintf(&b, "Expected to find output fields in the LM response: [%s] \n\n", strings.Join(e.Expected, ", "))
	if e.Parsed != nil {
		fmt.Fprintf(&b, "Actual output fields parsed from the LM response: [%s] \n\n", strings.Join(e.Parsed, ", "))
	}
	return b.String()
}

// StateError reports a saved state file that cannot be loaded: it names the
// file, the JSON key and what was expected there.
type StateError struct {
	// File is the path (or name) of the state file.
	File string
	// Key is the JSON path within the file, e.g. "predict.predict.signature".
	Key string
	// Expected says what should have been there.
	Expected string
}

// Error formats the problem as "state FILE: KEY: expected …".
func (e *StateError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("state %s: %s", e.File, e.Expected)
	}
	return fmt.Sprintf("state %s: key %q: %s", e.File, e.Key, e.Expected)
}

// StateMismatchError reports a saved state made for another program: its
// predictors or their signature fields differ from the program's. It names
// every difference, so one attempt shows all that must change.
type StateMismatchError struct {
	// File is the path (or name) of the state file.
	File string
	// Differences are the differences, predictors first, in file and
	// program order.
	Differences []string
}

// Error formats the differences as "state FILE: DIFF; DIFF".
func (e *StateMismatchError) Error() string {
	return fmt.Sprintf("state %s: %s", e.File, strings.Join(e.Differences, "; "))
}
