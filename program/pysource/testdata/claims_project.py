"""Signatures for the claims pipeline (extract -> verify).

Run `python -m claims.optimize` to compile; this module only declares.
"""
from __future__ import annotations

import logging
import os
from typing import List, Literal, Optional, Union

import dspy
from dspy import InputField, OutputField, Signature
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

MAX_CLAIMS = 8  # keep prompts short
MODEL_NAME = os.environ.get("MODEL", "openai/gpt-4o-mini")
SEVERITIES = ("low", "medium", "high")


def normalise(text: str) -> str:
    """Collapse white space; not part of any signature."""
    return " ".join(text.split())


class Evidence(BaseModel):
    """A quote that supports or refutes a claim."""

    quote: str = Field(
        ...,
        description="Verbatim span from the transcript",
        min_length=1,
    )
    start: int = Field(default=0, ge=0)
    speaker: Optional[str] = None


class Claim(BaseModel):
    text: str = Field(description='The claim, as one sentence')
    # How sure the extractor is; the verifier re-checks.
    confidence: float = Field(0.5, ge=0.0, le=1.0)
    evidence: list["Evidence"] = Field(default_factory=list)
    tags: List[str] = []
    kind: Literal["fact", "opinion", "prediction"] = "fact"

    def short(self) -> str:
        return self.text[:40]

    @property
    def is_fact(self) -> bool:
        return self.kind == "fact"


class ClaimExtraction(dspy.Signature):
    """Extract the factual claims made in the transcript.

    Only include claims that can be checked against public sources.
    Ignore greetings, filler and questions.

        Quote the speaker exactly; do not paraphrase.
    """

    transcript: str = InputField(desc="Full transcript text")
    # The speaker list helps attribute quotes.
    speakers: list[str] = dspy.InputField(
        desc="Names of the people speaking, "
        "in order of appearance",
    )
    claims: list[Claim] = OutputField(desc="The claims, most important first")


class VerifyClaims(Signature):
    '''Judge each claim against the quote.'''

    claims: list[str] = dspy.InputField()
    quote = dspy.InputField(desc='The quote to check against')  # no annotation: str
    supported: bool = dspy.OutputField(desc="True if every claim is supported by the quote")
    confidence: float = dspy.OutputField(desc="between 0 and 1", prefix="Confidence:")
    verdict: Union[Literal["supported", "refuted"], None] = dspy.OutputField()
    notes: str | None = dspy.OutputField(
        desc=(
            "Anything the reviewer should know; "
            'leave empty if nothing'
        ),
        format=str,
    )


class VerifyClaimsStrict(VerifyClaims):
    """Judge each claim against the quote. Be strict: partial support is refuted."""

    strictness: Literal[1, 2, 3] = dspy.InputField(desc="1 lenient .. 3 strict")


@dataclass_like
def helper_registry():
    return {"extract": ClaimExtraction, "verify": VerifyClaims}


class Pipeline(dspy.Module):
    def __init__(self):
        super().__init__()
        self.extract = dspy.ChainOfThought(ClaimExtraction)
        self.verify = dspy.Predict(VerifyClaims)

    def forward(self, transcript, speakers, quote):
        claims = self.extract(transcript=transcript, speakers=speakers).claims
        return self.verify(claims=[c.text for c in claims], quote=quote)


if __name__ == "__main__":
    dspy.configure(lm=dspy.LM(MODEL_NAME))
    print(Pipeline()(transcript="...", speakers=["A"], quote="..."))
