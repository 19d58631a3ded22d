
import dspy


class TwoStage(dspy.Module):
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.ChainOfThought("question -> search_query")
        self.answer = dspy.ChainOfThought(
            "question, context: list[str] -> answer, citations: list[str], sufficient: bool"
        )

    def forward(self, question, context):
        search_query = self.rewrite(question=question).search_query
        return self.answer(question=question, context=context)


# Programs used to load the TwoStage state file:
class ThreeStage(dspy.Module):  # one predictor more than the saved state
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.ChainOfThought("question -> search_query")
        self.answer = dspy.ChainOfThought(
            "question, context: list[str] -> answer, citations: list[str], sufficient: bool"
        )
        self.verify = dspy.Predict("answer -> ok: bool")


class OneStage(dspy.Module):  # one predictor fewer than the saved state
    def __init__(self):
        super().__init__()
        self.answer = dspy.ChainOfThought(
            "question, context: list[str] -> answer, citations: list[str], sufficient: bool"
        )


class Renamed(dspy.Module):  # same shape, different attribute name
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.ChainOfThought("question -> search_query")
        self.respond = dspy.ChainOfThought(
            "question, context: list[str] -> answer, citations: list[str], sufficient: bool"
        )


class DifferentFields(dspy.Module):  # same predictor names, different signature fields
    def __init__(self):
        super().__init__()
        self.rewrite = dspy.ChainOfThought("question -> search_query, alt_query")
        self.answer = dspy.ChainOfThought("question -> answer")
