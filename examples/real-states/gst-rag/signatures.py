"""The signature classes of ishaan1516/Rag_GST_Guide (src/dspy_program.py),
as that project declares them; its module, GSTQA, is described in
gst-rag.yaml. Everything else of that file (the LM set-up, the retriever) is
not needed to serve the two predictors."""

import dspy


class RewriteQuery(dspy.Signature):
    """Rewrite a user question into a search query using Indian GST statutory
    vocabulary - section numbers, form names, and CGST Act terminology - so it
    matches the phrasing used in a legal reference text."""

    question: str = dspy.InputField()
    search_query: str = dspy.OutputField()


class AnswerFromContext(dspy.Signature):
    """Answer strictly from the provided GST reference excerpts. Cite the
    chunk_id supporting each claim. If the excerpts do not contain the answer,
    set sufficient to False and say so rather than inferring."""

    question: str = dspy.InputField()
    context: str = dspy.InputField(desc="numbered excerpts with chapter and section")
    answer: str = dspy.OutputField()
    citations: list[str] = dspy.OutputField(desc="chunk_ids actually used")
    sufficient: bool = dspy.OutputField(desc="whether the context answered the question")
