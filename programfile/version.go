package programfile

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Version is the bundle's version as the registry stores it: the sha256,
// in hex, of the canonical file, the source and the state, each separated
// by a NUL byte so that bytes moving from one part to the next change it.
// The YAML as written is not covered: comments and styling do not make a
// new version.
func (b *Bundle) Version() (string, error) {
	canonical, err := b.File.Canonical()
	if err != nil {
		return "", fmt.Errorf("hash program %s: %w", b.File.Name, err)
	}
	h := sha256.New()
	h.Write(canonical)
	h.Write([]byte{0})
	h.Write(b.Source)
	h.Write([]byte{0})
	h.Write(b.State)
	return hex.EncodeToString(h.Sum(nil)), nil
}
