package programfile

import (
	"fmt"
	"io"
	"os"
)

// Bundle is a program file with the contents of the files it names: what
// a push sends and what a version hash covers.
type Bundle struct {
	// File is the parsed program file.
	File *File
	// YAML is the program file as read.
	YAML []byte
	// Source and State are the contents of File.Source and File.State,
	// nil when the file names none.
	Source, State []byte
}

// Load reads the program file name in dir and the source and state it
// names, for the CLI and PROGRAMS_DIR; a server takes contents, never
// paths. Every read goes through an os.Root at dir, so neither the names
// nor a symbolic link reach outside dir, and maxBytes (PROGRAM_MAX_BYTES)
// bounds the three files together before any is read whole.
func Load(dir, name string, maxBytes int64) (*Bundle, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("load program: %w", err)
	}
	defer root.Close()
	budget := maxBytes
	b := &Bundle{}
	if b.YAML, err = readAtMost(root, name, min(budget, MaxYAMLBytes), "MaxYAMLBytes"); err != nil {
		return nil, fmt.Errorf("load program: %w", err)
	}
	if b.File, err = Parse(b.YAML); err != nil {
		return nil, fmt.Errorf("load program: %s: %w", name, err)
	}
	budget -= int64(len(b.YAML))
	for _, part := range []struct {
		path string
		into *[]byte
	}{{b.File.Source, &b.Source}, {b.File.State, &b.State}} {
		if part.path == "" {
			continue
		}
		if *part.into, err = readAtMost(root, part.path, budget, "PROGRAM_MAX_BYTES"); err != nil {
			return nil, fmt.Errorf("load program %s: %w", name, err)
		}
		budget -= int64(len(*part.into))
	}
	return b, nil
}

// readAtMost reads name from root, refusing it when it holds more than
// limit bytes (a file still growing included).
func readAtMost(root *os.Root, name string, limit int64, limitName string) ([]byte, error) {
	f, err := root.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: more than the %d bytes left under %s", name, limit, limitName)
	}
	return data, nil
}
