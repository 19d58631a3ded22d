package programfile

import (
	_ "embed"
	"fmt"

	"github.com/qaqueue/qaqueue/program"
)

// qaFile is the built-in QA program as a program file.
//
//go:embed qa.yaml
var qaFile []byte

// QAFile returns the built-in QA program's file.
func QAFile() []byte { return append([]byte(nil), qaFile...) }

// QA returns the built-in QA program, built from QAFile with its class QA
// taken from program.QASignature: the same predictor as program.NewQA.
func QA() (*Program, error) {
	f, err := Parse(qaFile)
	if err != nil {
		return nil, fmt.Errorf("parse QA program file: %w", err)
	}
	p, err := f.Build(func(class string) (*program.Signature, error) {
		if class != "QA" {
			return nil, fmt.Errorf("class %s not found", class)
		}
		return program.QASignature(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("build QA program: %w", err)
	}
	return p, nil
}
