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
// A name it does not take gets a message a DSPy user can act on: the
// spelling it meant, or why a DSPy module it knows is not served yet.
func ParseModule(s string) (Module, error) {
	for _, m := range Modules() {
		if string(m) == s {
			return m, nil
		}
	}
	runs := moduleChoice()
	for _, m := range Modules() {
		switch {
		case strings.EqualFold(string(m), s):
			return "", fmt.Errorf("%q is not a module: names are case-sensitive, as in Python; did you mean %q?", s, string(m))
		case s == "dspy."+string(m):
			return "", fmt.Errorf("%q is not a module: write the class name without dspy., as in %q", s, string(m))
		}
	}
	if why, ok := notYet[s]; ok {
		return "", fmt.Errorf("%q is not supported yet: a stage runs %s; %s", s, runs, why)
	}
	return "", fmt.Errorf("%q is not supported: a stage runs %s (a dspy.Module of your own is a chain of such stages: list them)", s, runs)
}

// notYet says why each DSPy module that is not a stage kind yet is not.
var notYet = map[string]string{
	"ReAct":            "ReAct calls tools, which qaqueue does not run",
	"CodeAct":          "CodeAct calls tools and runs the code it writes, which qaqueue does not run",
	"ProgramOfThought": "ProgramOfThought runs the code it writes, which qaqueue does not run",
	"Refine":           "Refine reruns a module under a reward function, Python code qaqueue does not run (serve the module it wraps as the stage)",
	"BestOfN":          "BestOfN reruns a module under a reward function, Python code qaqueue does not run (serve the module it wraps as the stage)",
}

// moduleChoice is the supported modules as a phrase: "A or B".
func moduleChoice() string {
	names := make([]string, 0, len(Modules()))
	for _, m := range Modules() {
		names = append(names, string(m))
	}
	if len(names) < 2 {
		return strings.Join(names, "")
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
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
