package program

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// Predict is DSPy's Predict: a signature plus the state an optimizer
// produces (demos, and the traces, train and lm entries saved with them).
// A Predict is immutable; the With… methods return copies.
type Predict struct {
	sig    *Signature
	demos  []*Map
	traces []any
	train  []any
	// lm is the saved LM state, kept as loaded (nil for JSON null).
	lm any
}

// NewPredict returns a Predict over sig with no demos.
func NewPredict(sig *Signature) *Predict {
	return &Predict{sig: sig, traces: []any{}, train: []any{}}
}

// NewChainOfThought returns the Predict that DSPy's ChainOfThought(sig)
// holds: sig with a str output "reasoning" (desc "${reasoning}", prefix
// "Reasoning:") inserted before the first output.
func NewChainOfThought(sig *Signature) (*Predict, error) {
	withReasoning, err := sig.Prepend(Field{Name: "reasoning", Desc: "${reasoning}", Prefix: "Reasoning:"})
	if err != nil {
		return nil, fmt.Errorf("new chain of thought: %w", err)
	}
	return NewPredict(withReasoning), nil
}

// Signature returns the signature (with any loaded instructions, prefixes
// and descriptions).
func (p *Predict) Signature() *Signature { return p.sig }

// Demos returns the demos in order. The maps are shared; do not modify them.
func (p *Predict) Demos() []*Map { return append([]*Map(nil), p.demos...) }

// WithDemos returns a copy with the given demos (dicts keyed by field name).
func (p *Predict) WithDemos(demos []*Map) *Predict {
	c := *p
	c.demos = append([]*Map(nil), demos...)
	return &c
}

// WithSignature returns a copy with another signature.
func (p *Predict) WithSignature(sig *Signature) *Predict {
	c := *p
	c.sig = sig
	return &c
}

// NamedPredict is a predictor with its state key, the attribute path DSPy
// names it by ("predict.predict" for self.predict = ChainOfThought(…)).
type NamedPredict struct {
	Key     string
	Predict *Predict
}

// Program is a module made of named predictors; Run calls the first. Its
// provenance identifies the state it runs. A Program is immutable and safe
// for concurrent use.
type Program struct {
	preds      []NamedPredict
	provenance string
}

// NewProgram builds a program from its predictors, in DSPy's
// named_parameters order. The first one is the one Run calls.
func NewProgram(preds ...NamedPredict) (*Program, error) {
	if len(preds) == 0 {
		return nil, errors.New("new program: no predictors")
	}
	seen := map[string]bool{}
	for _, np := range preds {
		if np.Key == "" || np.Predict == nil || seen[np.Key] {
			return nil, fmt.Errorf("new program: bad or duplicate predictor %q", np.Key)
		}
		seen[np.Key] = true
	}
	p := &Program{preds: append([]NamedPredict(nil), preds...)}
	state, err := p.MarshalState()
	if err != nil {
		return nil, fmt.Errorf("new program: %w", err)
	}
	p.provenance = sha256Hex(state)
	return p, nil
}

// Predictors returns the named predictors in order.
func (p *Program) Predictors() []NamedPredict { return append([]NamedPredict(nil), p.preds...) }

// Predictor returns the predictor Run calls and its key.
func (p *Program) Predictor() NamedPredict { return p.preds[0] }

// Predict returns the predictor saved under key.
func (p *Program) Predict(key string) (*Predict, bool) {
	for _, np := range p.preds {
		if np.Key == key {
			return np.Predict, true
		}
	}
	return nil, false
}

// Provenance is the hex sha256 of the state file the program was loaded
// from, or of its canonical saved state when none was loaded. Job results
// record it so an answer can be traced to the exact prompts that made it.
func (p *Program) Provenance() string { return p.provenance }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
