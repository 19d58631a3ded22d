package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"
)

// FuzzPushBody checks that any push body is refused with a 422 naming a
// field, or decoded into the strings it holds: the file always, the source
// and state exactly when the body gives them (null as absent).
func FuzzPushBody(f *testing.F) {
	for _, seed := range []string{
		`{"file": "name: a\nstages: []\n"}`,
		`{"file": "f", "source": "s", "state": "{}"}`,
		`{"file": "f", "source": null}`,
		`{"file": 7}`, `{"path": "/etc/passwd"}`, `{}`, `[]`, `null`, `{"file": "f"} {}`, `{"file": "\u0000"}`, ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		yaml, source, state, err := decodePush(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) || ae.status != http.StatusUnprocessableEntity || ae.field == "" || ae.message == "" {
				t.Fatalf("refusal %#v is not a 422 naming a field", err)
			}
			return
		}
		var m map[string]*string
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("accepted a body that is not an object of strings: %v", err)
		}
		if m["file"] == nil || string(yaml) != *m["file"] {
			t.Fatalf("file %q, body %q", yaml, body)
		}
		for name, got := range map[string][]byte{"source": source, "state": state} {
			want := m[name]
			if (want == nil) != (got == nil) || (want != nil && string(got) != *want) {
				t.Fatalf("%s %q, body %q", name, got, body)
			}
		}
	})
}
