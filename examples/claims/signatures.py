"""Signatures of the claims pipeline: pull the checkable claims out of an
article, then judge them against the transcript the article quotes."""

from typing import Literal

import dspy


class ClaimExtraction(dspy.Signature):
    """Extract the factual claims an article makes, each as one short
    sentence that can be checked on its own."""

    article: str = dspy.InputField(desc="the article's text")
    claims: list[str] = dspy.OutputField(desc="one checkable claim per item, in the article's order")
    topic: Literal["economy", "health", "science", "politics", "other"] = dspy.OutputField(
        desc="what the claims are mostly about"
    )
