"""The claims program as its author runs it in Python: the reference for
claims.yaml. qaqueue never runs this file; it reads signatures.py and the
saved state, and claims.yaml says what this module's forward does."""

import dspy

from signatures import ClaimExtraction


class Claims(dspy.Module):
    def __init__(self):
        super().__init__()
        # named_predictors() keys: "extract.predict" (ChainOfThought holds
        # its Predict as .predict) and "verify" (a bare Predict).
        self.extract = dspy.ChainOfThought(ClaimExtraction)
        self.verify = dspy.Predict("claims: list[str], quote -> supported: bool, confidence: float")

    def forward(self, article, transcript):
        extracted = self.extract(article=article)
        verdict = self.verify(claims=extracted.claims, quote=transcript)
        return dspy.Prediction(
            claims=extracted.claims,
            topic=extracted.topic,
            supported=verdict.supported,
            confidence=verdict.confidence,
        )


if __name__ == "__main__":
    # How optimized.json was written (after an optimizer's compile()):
    #   program = Claims()
    #   optimized = optimizer.compile(program, trainset=trainset)
    #   optimized.save("optimized.json", save_program=False)
    program = Claims()
    print([name for name, _ in program.named_predictors()])  # ['extract.predict', 'verify']
