package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/joho/godotenv"
)

// maxDotEnvBytes bounds the .env file read; a larger one is surely not a
// .env file, and finding the bad line below costs time quadratic in lines.
const maxDotEnvBytes = 1 << 20

// LoadDotEnv reads a .env file into a map, for [Load]. A missing file is no
// error (nil map): .env is optional. A malformed one is an error naming the
// file and the line, without quoting the line, which may hold a secret.
// Values are not exported to the process environment.
func LoadDotEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	if len(data) > maxDotEnvBytes {
		return nil, fmt.Errorf("read env file %s: larger than %s", path, Size(maxDotEnvBytes))
	}
	return ParseDotEnv(path, data)
}

// ParseDotEnv parses the content of a .env file; name is used in errors.
func ParseDotEnv(name string, data []byte) (map[string]string, error) {
	vars, err := godotenv.UnmarshalBytes(data)
	if err != nil {
		return nil, fmt.Errorf("parse env file %s: line %d: %s", name, badLine(data), sanitizeDotEnvError(err))
	}
	return vars, nil
}

// badLine finds the line godotenv choked on; its errors carry no position.
// It is one past the longest prefix of whole lines that parses: a prefix
// that cuts a multi-line quoted value fails too, but a later, longer prefix
// parses again, so the last success marks where the trouble starts.
func badLine(data []byte) int {
	data = bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))
	lines := bytes.SplitAfter(data, []byte("\n"))
	good := 0
	for n := 1; n <= len(lines); n++ {
		if _, err := godotenv.UnmarshalBytes(bytes.Join(lines[:n], nil)); err == nil {
			good = n
		}
	}
	return good + 1
}

// sanitizeDotEnvError keeps godotenv's reason and drops the text it quotes
// after it (the rest of the file, which may hold secrets).
func sanitizeDotEnvError(err error) string {
	msg := err.Error()
	if strings.HasPrefix(msg, "unterminated quoted value") {
		return "unterminated quoted value"
	}
	if before, _, ok := strings.Cut(msg, " near "); ok {
		return before
	}
	return msg
}
