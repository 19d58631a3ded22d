package program

import (
	"strings"
	"testing"
)

// pydantic-core prints an input whose repr is over 50 bytes as its first
// 25 bytes, "..." and its last 24 (pretty() in validation_exception.rs),
// never splitting a character.
func TestValidationErrorTruncatesLongInput(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ text, want string }{
		{strings.Repeat("a", 48), "'" + strings.Repeat("a", 48) + "'"},
		{strings.Repeat("a", 49), "'" + strings.Repeat("a", 24) + "..." + strings.Repeat("a", 23) + "'"},
		// 'é' is two bytes: the cut moves to the start of the rune at 25
		// and past the rune at len-24.
		{strings.Repeat("é", 30), "'" + strings.Repeat("é", 12) + "..." + strings.Repeat("é", 11) + "'"},
	} {
		_, err := parseValue(tc.text, Type{Name: "int"})
		if err == nil {
			t.Fatalf("%q parsed as an int", tc.text)
		}
		if want := "input_value=" + tc.want + ", input_type=str]"; !strings.Contains(err.Error(), want) {
			t.Errorf("error for %q:\n%s\nwant it to contain %s", tc.text, err, want)
		}
	}
}
