"""The signature of knutole/dspy-demo (demo-dspy.py), as that project
declares it; its module, PIIRemover, is described in pii-clean.yaml. The
fields use pydantic's description= keyword, which DSPy takes as desc."""

import dspy


class PIISignature(dspy.Signature):
    """
    Remove PII and inappropriate content from text.
    Also remove identifying information in terms of location, exact times, product name and type, store name, etc.
    Replace redacted text with generalized words or just omit the word if grammatically possible.
    Remove references to language problems, nationality, religion, gender, age, etc.
    Keep references to logistics companies like Porterbuddy, HeltHjem, Postnord, Posten, Bring, DHL, FedEx, etc.
    Output in same language as input.
    """

    # define input
    text: str = dspy.InputField(description="The text to clean")

    # define output
    clean_text: str = dspy.OutputField(description="The cleaned text")
