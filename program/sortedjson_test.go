package program

import "testing"

// TestEncodeSortedJSON: orjson.dumps(v, option=OPT_SORT_KEYS), as orjson
// 3.8.3 writes it, sorts ordered maps too and refuses invalid UTF-8.
func TestEncodeSortedJSON(t *testing.T) {
	t.Parallel()
	inner := NewMap()
	inner.Set("b", 1.0)
	inner.Set("a", "é<&>")
	outer := NewMap()
	outer.Set("z", []any{inner, int64(3)})
	outer.Set("m", nil)
	got, err := EncodeSortedJSON(outer)
	if want := `{"m":null,"z":[{"a":"é<&>","b":1.0},3]}`; err != nil || string(got) != want {
		t.Fatalf("EncodeSortedJSON = %s, %v; want %s", got, err, want)
	}
	if _, err := EncodeSortedJSON(map[string]any{"k": "\xff"}); err == nil {
		t.Fatal("invalid UTF-8 was encoded")
	}
}
