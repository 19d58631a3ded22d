package config

import (
	"math"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "1073741824", want: GiB},
		{in: "500MB", want: 500 * MB},
		{in: "500mb", want: 500 * MB},
		{in: "1GiB", want: GiB},
		{in: "1 GiB", want: GiB},
		{in: " 64Ki ", want: 64 * KiB},
		{in: "1.5GB", want: 1500 * MB},
		{in: "0.5KiB", want: 512},
		{in: "100B", want: 100},
		{in: "2TiB", want: 2 * TiB},
		{in: "3TB", want: 3 * TB},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "", wantErr: "must be a byte size"},
		{in: "MB", wantErr: "must be a byte size"},
		{in: "-1", wantErr: "must be a byte size"},
		{in: "1.", wantErr: "must be a byte size"},
		{in: ".5", wantErr: "must be a byte size"},
		{in: "1.2.3", wantErr: "must be a byte size"},
		{in: "1M", wantErr: `ambiguous unit "M": write MB (powers of 1000) or MiB (powers of 1024)`},
		{in: "1g", wantErr: `ambiguous unit "g": write GB`},
		{in: "1PB", wantErr: `unknown unit "PB"`},
		{in: "0.3B", wantErr: "whole number of bytes"},
		{in: "9223372036854775808", wantErr: "at most 9223372036854775807 bytes"},
		{in: "9EiB", wantErr: "unknown unit"},
		{in: "10000000TiB", wantErr: "at most"},
		{in: strings.Repeat("9", 41), wantErr: "too many digits"},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseSize(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseSize(%q) = %d, %v, want %d", tt.in, got, err, tt.want)
		}
	}
}

func TestSizeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0"},
		{1, "1"},
		{1023, "1023"},
		{KiB, "1KiB"},
		{1000, "1KB"},
		{GiB, "1GiB"},
		{100 * MB, "100MB"},
		{1500 * MB, "1500MB"},
		{MiB + 1, "1048577"},
		{2 * TiB, "2TiB"},
	}
	for _, tt := range tests {
		if got := tt.in.String(); got != tt.want {
			t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
		}
	}
}

// FuzzParseSize checks that the parser never panics and that whatever it
// accepts prints back to a string that parses to the same size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1GiB", "500MB", "1.5 GB", "64Ki", "1M", "-1", "1.", "9223372036854775807", "0.0001KB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseSize(s)
		if err != nil {
			return
		}
		if got < 0 {
			t.Fatalf("ParseSize(%q) = %d, negative", s, got)
		}
		back, err := ParseSize(got.String())
		if err != nil || back != got {
			t.Fatalf("ParseSize(%q) = %d; its String %q parses to %d, %v", s, got, got.String(), back, err)
		}
	})
}
