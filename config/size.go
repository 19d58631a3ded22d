package config

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strings"
)

// Size is a number of bytes. It parses from plain bytes ("1073741824") or a
// number with a unit ("500MB", "1GiB", "1.5 GB", "64Ki"); see [ParseSize].
type Size int64

// Byte size units. Decimal units (KB, MB, ...) are powers of 1000 and binary
// ones (KiB or Ki, MiB or Mi, ...) powers of 1024, as in the IEC standard.
const (
	Byte Size = 1
	KB   Size = 1000
	MB   Size = 1000 * KB
	GB   Size = 1000 * MB
	TB   Size = 1000 * GB
	KiB  Size = 1 << 10
	MiB  Size = 1 << 20
	GiB  Size = 1 << 30
	TiB  Size = 1 << 40
)

// sizeUnit returns the size of a lower-cased unit. Bare K, M, G and T are
// missing on purpose: tools disagree on whether they mean 1000 or 1024, and a
// cache ten times too large is a bad way to find out.
func sizeUnit(unit string) (Size, bool) {
	switch unit {
	case "", "b":
		return Byte, true
	case "kb":
		return KB, true
	case "mb":
		return MB, true
	case "gb":
		return GB, true
	case "tb":
		return TB, true
	case "kib", "ki":
		return KiB, true
	case "mib", "mi":
		return MiB, true
	case "gib", "gi":
		return GiB, true
	case "tib", "ti":
		return TiB, true
	}
	return 0, false
}

// maxSizeNumber bounds the digits a size may have, so a hostile value cannot
// make the parser do big-number arithmetic on megabytes of digits.
const maxSizeNumber = 40

// ParseSize parses a byte size: a non-negative decimal number, optionally
// with a fraction, then an optional unit (B, KB, MB, GB, TB, KiB, MiB, GiB,
// TiB, or Ki, Mi, Gi, Ti; case-insensitive; a space between is allowed).
// The result must be a whole number of bytes that fits in an int64.
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	end := 0
	for end < len(s) && (s[end] >= '0' && s[end] <= '9' || s[end] == '.') {
		end++
	}
	num, unitText := s[:end], strings.TrimSpace(s[end:])
	if num == "" {
		return 0, errors.New("must be a byte size such as 1073741824, 500MB or 1GiB")
	}
	if len(num) > maxSizeNumber {
		return 0, errors.New("has too many digits")
	}
	unit, ok := sizeUnit(strings.ToLower(unitText))
	if !ok {
		switch strings.ToLower(unitText) {
		case "k", "m", "g", "t":
			u := strings.ToUpper(unitText)
			return 0, fmt.Errorf("has an ambiguous unit %q: write %sB (powers of 1000) or %siB (powers of 1024)", unitText, u, u)
		}
		return 0, fmt.Errorf("has an unknown unit %q (want B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", unitText)
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if whole == "" || hasDot && frac == "" || strings.Contains(frac, ".") {
		return 0, errors.New("must be a byte size such as 1073741824, 500MB or 1GiB")
	}
	mantissa, ok := new(big.Int).SetString(whole+frac, 10)
	if !ok {
		return 0, errors.New("must be a byte size such as 1073741824, 500MB or 1GiB")
	}
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
	n, rem := new(big.Int).QuoRem(mantissa.Mul(mantissa, big.NewInt(int64(unit))), scale, new(big.Int))
	if rem.Sign() != 0 {
		return 0, errors.New("must be a whole number of bytes")
	}
	if !n.IsInt64() {
		return 0, fmt.Errorf("must be at most %d bytes", int64(math.MaxInt64))
	}
	return Size(n.Int64()), nil
}

// UnmarshalText parses text with [ParseSize].
func (s *Size) UnmarshalText(text []byte) error {
	v, err := ParseSize(string(text))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// MarshalText writes the size as [Size.String] does, so it reads back.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// String writes the size in the largest unit that divides it exactly
// ("1GiB", "100MB"), or in plain bytes, so what is printed parses back to the
// same value.
func (s Size) String() string {
	if s > 0 {
		for _, u := range []struct {
			size Size
			name string
		}{{TiB, "TiB"}, {TB, "TB"}, {GiB, "GiB"}, {GB, "GB"}, {MiB, "MiB"}, {MB, "MB"}, {KiB, "KiB"}, {KB, "KB"}} {
			if s%u.size == 0 {
				return fmt.Sprintf("%d%s", s/u.size, u.name)
			}
		}
	}
	return fmt.Sprintf("%d", int64(s))
}
