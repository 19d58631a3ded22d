package config

import (
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Mask is what a secret prints as.
const Mask = "***"

// Secret is a string that must not be printed: fmt, encoding/json and
// [Config.Settings] show [Mask] instead (or nothing when it is empty, so an
// unset secret is still visible as unset). Call [Secret.Reveal] where the
// value is really needed.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String returns [Mask], or "" for an empty secret.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return Mask
}

// GoString masks the value for %#v too.
func (s Secret) GoString() string { return `config.Secret("` + s.String() + `")` }

// MarshalText masks the value in JSON and other text encodings.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// SecretURL is a URL that may carry a password (redis://user:pass@host/0).
// It prints with the password masked; call [SecretURL.Reveal] to connect.
type SecretURL string

// Reveal returns the URL with its password.
func (u SecretURL) Reveal() string { return string(u) }

// String returns the URL with any password masked; see [RedactURL].
func (u SecretURL) String() string { return RedactURL(string(u)) }

// GoString masks the password for %#v too.
func (u SecretURL) GoString() string { return `config.SecretURL("` + u.String() + `")` }

// MarshalText masks the password in JSON and other text encodings.
func (u SecretURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// RedactURL masks the secret parts of a URL: the password
// (redis://user:***@host), a user name given without a password (Redis
// takes a lone user-info as the password, so it may well be one), and query
// parameters whose name mentions a password. A URL that does not parse is
// masked whole, since where the password sits is then unknown.
func RedactURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return Mask
	}
	if u.Opaque != "" {
		// "scheme:anything" without "//": where a secret would sit is unknown.
		return u.Scheme + ":" + Mask
	}
	// The mask is spliced in by hand: url.URL would escape it to %2A%2A%2A.
	userinfo := ""
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			userinfo = url.User(u.User.Username()).String() + ":" + Mask + "@"
		} else if u.User.Username() != "" {
			userinfo = Mask + "@"
		}
		u.User = nil
	}
	query := u.RawQuery
	if query != "" {
		q := u.Query()
		parts := make([]string, 0, len(q))
		for _, k := range slices.Sorted(maps.Keys(q)) {
			for _, val := range q[k] {
				if strings.Contains(strings.ToLower(k), "pass") {
					parts = append(parts, url.QueryEscape(k)+"="+Mask)
				} else {
					parts = append(parts, url.QueryEscape(k)+"="+url.QueryEscape(val))
				}
			}
		}
		query = strings.Join(parts, "&")
		u.RawQuery = ""
	}
	fragment := ""
	if u.Fragment != "" {
		fragment = "#" + u.EscapedFragment()
		u.Fragment, u.RawFragment = "", ""
	}
	out := u.String()
	if userinfo != "" {
		prefix := u.Scheme + "://"
		out = prefix + userinfo + strings.TrimPrefix(out, prefix)
	}
	if query != "" {
		out += "?" + query
	}
	return out + fragment
}
