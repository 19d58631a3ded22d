import dspy

class QA(dspy.Signature):
    """Answer a question with detailed reasoning."""
    question: str = dspy.InputField(desc="The question to answer")
    answer: str = dspy.OutputField(desc="A clear, comprehensive answer")
    key_concepts: str = dspy.OutputField(desc="Key concepts used in the answer")
    question_type: str = dspy.OutputField(desc="Type of question: factual, opinion, analytical")

class QAProgram(dspy.Module):
    def __init__(self):
        super().__init__()
        self.predict = dspy.ChainOfThought(QA)   # saved as "predict.predict"

    def forward(self, question):
        return self.predict(question=question)

optimized = dspy.MIPROv2(metric=my_metric, auto="light").compile(QAProgram(), trainset=trainset)
optimized.save("qa_optimized.json", save_program=False)   # JSON state, not a pickle
