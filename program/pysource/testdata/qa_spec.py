class QA(dspy.Signature):
    """Answer a question with detailed reasoning."""
    question: str = dspy.InputField(desc="The question to answer")
    answer: str = dspy.OutputField(desc="A clear, comprehensive answer")
    key_concepts: str = dspy.OutputField(desc="Key concepts used in the answer")
    question_type: str = dspy.OutputField(desc="Type of question: factual, opinion, analytical")
cot = dspy.ChainOfThought(QA)
cot.predict.demos = [dspy.Example(question="What is the capital of France?", answer="Paris").with_inputs("question")]
cot(question="Why is the sky blue?")
