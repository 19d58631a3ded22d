import dspy


class Answer(dspy.Signature):
    question: str = dspy.InputField()
    context: list[str] = dspy.InputField()
    answer: str = dspy.OutputField()
    citations: list[str] = dspy.OutputField()
    sufficient: bool = dspy.OutputField()


class TwoStage(dspy.Module):
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.ChainOfThought("question -> search_query")
        self.answer = dspy.ChainOfThought(Answer)

    def forward(self, question, context):
        search_query = self.rewrite(question=question).search_query
        return self.answer(question=question, context=context)
