package program

// QAStateKey is the state key of the QA program's predictor: the Python
// module sets self.predict = dspy.ChainOfThought(QA), whose own Predict is
// also called predict.
const QAStateKey = "predict.predict"

// QASignature is the deployment's signature:
//
//	class QA(dspy.Signature):
//	    """Answer a question with detailed reasoning."""
//	    question: str = dspy.InputField(desc="The question to answer")
//	    answer: str = dspy.OutputField(desc="A clear, comprehensive answer")
//	    key_concepts: str = dspy.OutputField(desc="Key concepts used in the answer")
//	    question_type: str = dspy.OutputField(desc="Type of question: factual, opinion, analytical")
func QASignature() *Signature {
	sig, err := NewSignature("Answer a question with detailed reasoning.",
		[]Field{{Name: "question", Desc: "The question to answer"}},
		[]Field{
			{Name: "answer", Desc: "A clear, comprehensive answer"},
			{Name: "key_concepts", Desc: "Key concepts used in the answer"},
			{Name: "question_type", Desc: "Type of question: factual, opinion, analytical"},
		})
	if err != nil {
		panic("program: QA signature: " + err.Error()) // static data; cannot fail
	}
	return sig
}

// NewQA returns the QA program with no saved state: ChainOfThought over
// QASignature under the key "predict.predict".
func NewQA() *Program {
	cot, err := NewChainOfThought(QASignature())
	if err != nil {
		panic("program: QA chain of thought: " + err.Error()) // static data; cannot fail
	}
	p, err := NewProgram(NamedPredict{Key: QAStateKey, Predict: cot})
	if err != nil {
		panic("program: QA program: " + err.Error()) // static data; cannot fail
	}
	return p
}

// LoadQA returns the QA program with the saved state at path applied (the
// deployment's PROGRAM_STATE_PATH, read by the caller). An empty path gives
// the program without state. Warnings are DSPy's version-mismatch messages.
func LoadQA(path string) (*Program, []string, error) {
	p := NewQA()
	if path == "" {
		return p, nil, nil
	}
	return p.LoadStateFile(path)
}
