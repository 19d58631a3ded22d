package config

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// APIKey is one named key from API_KEYS or ADMIN_API_KEYS. The name is the
// owner of the jobs and batches the key creates, so it appears in Redis keys
// and logs; the key itself never does.
type APIKey struct {
	// Name identifies the key's owner: letters, digits, '.', '_' and '-'.
	Name string `env:"-"`
	// Plain is the key as configured with "name:key"; empty when the key was
	// given only as "name:sha256:<hex>". It is a [Secret], so it never prints.
	Plain Secret `env:"-"`
	// SHA256 is the digest of the key, always set: compare presented keys
	// against it (see [APIKey.Matches]) so plain and hashed entries behave
	// the same.
	SHA256 [sha256.Size]byte `env:"-"`
}

// The env tags above are "-" because the env library would otherwise try to
// fill a slice of structs from API_KEYS_0_… variables.

// Matches reports whether presented is this key, in constant time with
// respect to the key's content. An empty token matches no key.
func (k APIKey) Matches(presented string) bool {
	return presented != "" && k.matches(sha256.Sum256([]byte(presented)))
}

// emptySum is the digest of the empty key, which ParseAPIKeys refuses: it is
// what `printf %s "$UNSET" | sha256sum` gives, and as a key it would make
// every request without one its owner's.
var emptySum = sha256.Sum256(nil)

func (k APIKey) matches(sum [sha256.Size]byte) bool {
	return subtle.ConstantTimeCompare(sum[:], k.SHA256[:]) == 1
}

// String prints the name only.
func (k APIKey) String() string { return k.Name + ":" + Mask }

// GoString prints the name only, for %#v.
func (k APIKey) GoString() string { return fmt.Sprintf("config.APIKey{Name: %q}", k.Name) }

// MarshalText prints the name only, in JSON and other text encodings.
func (k APIKey) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// APIKeys is a list of named keys, parsed from a comma-separated list of
// "name:key" or "name:sha256:<64 hex digits>" entries; see [ParseAPIKeys].
type APIKeys []APIKey

// ParseAPIKeys parses a comma-separated key list. Spaces around entries and
// empty entries are ignored. Names must be unique, and so must keys: a key
// shared by two names would make the owner of a job ambiguous. Error
// messages name entries by position and name, never by key.
func ParseAPIKeys(s string) (APIKeys, error) {
	var keys APIKeys
	var errs []error
	names := map[string]bool{}
	digests := map[[sha256.Size]byte]string{}
	pos := 0
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		pos++
		k, err := parseAPIKey(entry)
		if err != nil {
			errs = append(errs, fmt.Errorf("entry %d: %w", pos, err))
			continue
		}
		if names[k.Name] {
			errs = append(errs, fmt.Errorf("entry %d: name %q is used twice", pos, k.Name))
			continue
		}
		if other, ok := digests[k.SHA256]; ok {
			errs = append(errs, fmt.Errorf("entry %d (%q): same key as %q", pos, k.Name, other))
			continue
		}
		names[k.Name] = true
		digests[k.SHA256] = k.Name
		keys = append(keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

func parseAPIKey(entry string) (APIKey, error) {
	name, rest, ok := strings.Cut(entry, ":")
	if !ok {
		return APIKey{}, errors.New(`must be "name:key" or "name:sha256:<hex>"`)
	}
	if err := checkKeyName(name); err != nil {
		return APIKey{}, err
	}
	k := APIKey{Name: name}
	if digest, ok := strings.CutPrefix(rest, "sha256:"); ok {
		b, err := hex.DecodeString(digest)
		if err != nil || len(b) != sha256.Size {
			return APIKey{}, fmt.Errorf("%q: sha256 must be %d hex digits", name, 2*sha256.Size)
		}
		copy(k.SHA256[:], b)
		if k.SHA256 == emptySum {
			return APIKey{}, fmt.Errorf("%q: sha256 is the digest of an empty key (did the variable holding the key expand to nothing?)", name)
		}
		return k, nil
	}
	if rest == "" {
		return APIKey{}, fmt.Errorf("%q: empty key", name)
	}
	if strings.ContainsFunc(rest, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		// A header cannot carry these, so such a key could never match.
		return APIKey{}, fmt.Errorf("%q: key contains spaces or control characters", name)
	}
	k.Plain = Secret(rest)
	k.SHA256 = sha256.Sum256([]byte(rest))
	return k, nil
}

// checkKeyName keeps names safe to embed in Redis keys and log fields.
func checkKeyName(name string) error {
	if name == "" {
		return errors.New("empty name")
	}
	if len(name) > 64 {
		return errors.New("name is longer than 64 characters")
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			// The name is not echoed: a malformed entry may be a key.
			return errors.New("name may hold only letters, digits, '.', '_' and '-'")
		}
	}
	return nil
}

// UnmarshalText parses text with [ParseAPIKeys].
func (l *APIKeys) UnmarshalText(text []byte) error {
	keys, err := ParseAPIKeys(string(text))
	if err != nil {
		return err
	}
	*l = keys
	return nil
}

// Names returns the key names in order.
func (l APIKeys) Names() []string {
	names := make([]string, len(l))
	for i, k := range l {
		names[i] = k.Name
	}
	return names
}

// Lookup returns the key that presented matches. It checks every key, so
// the time taken does not tell which one matched. An empty token matches no
// key, whatever the list holds (defence in depth: ParseAPIKeys refuses the
// empty key, a Config built by hand may not).
func (l APIKeys) Lookup(presented string) (APIKey, bool) {
	if presented == "" {
		return APIKey{}, false
	}
	sum := sha256.Sum256([]byte(presented))
	var found APIKey
	ok := false
	for _, k := range l {
		if k.matches(sum) {
			found, ok = k, true
		}
	}
	return found, ok
}

// String lists the names with masked keys.
func (l APIKeys) String() string {
	parts := make([]string, len(l))
	for i, k := range l {
		parts[i] = k.String()
	}
	return strings.Join(parts, ",")
}
