package programfile

import (
	"fmt"
	"strings"

	"github.com/qaqueue/qaqueue/program"
)

// Module is the DSPy module a stage runs. It is a closed set: a new kind
// (a tool-calling loop) is a new constant here and a case in newPredict,
// with no change to the file's shape.
type Module string

// The supported modules.
const (
	// ModulePredict is dspy.Predict: the signature as written.
	ModulePredict Module = "Predict"
	// ModuleChainOfThought is dspy.ChainOfThought: the signature with a
	// str output "reasoning" before the first output.
	ModuleChainOfThought Module = "ChainOfThought"
)

// Modules lists the supported modules in the order messages name them.
func Modules() []Module { return []Module{ModulePredict, ModuleChainOfThought} }

// ParseModule returns the module named s (case-sensitive, as in Python).
func ParseModule(s string) (Module, error) {
	for _, m := range Modules() {
		if string(m) == s {
			return m, nil
		}
	}
	names := make([]string, 0, len(Modules()))
	for _, m := range Modules() {
		names = append(names, string(m))
	}
	return "", fmt.Errorf("%q is not supported (%s)", s, strings.Join(names, ", "))
}

// newPredict returns the predictor the module holds for sig, as DSPy
// builds it: ChainOfThought's inner Predict has reasoning prepended.
func (m Module) newPredict(sig *program.Signature) (*program.Predict, error) {
	switch m {
	case ModulePredict:
		return program.NewPredict(sig), nil
	case ModuleChainOfThought:
		return program.NewChainOfThought(sig)
	}
	return nil, fmt.Errorf("module %q is not supported", string(m))
}
