"""Translation through a server (``serving.predict_tasks.translate.remote_predict`` picks the
way): the runtime's ``Translator`` over the server's encoder and decoder step, and
translations by its string graph."""

from __future__ import annotations

import numpy as np

from serving.clients.remote import RemoteGraph
from serving.runtime.translate import Translation, Translator, graph_translator

STRING_GRAPH = "translate"  # translate's SavedModel graph: texts in, translations out


def remote_translator(graph: RemoteGraph) -> Translator:
    """``onnx_translator``'s ``Translator``, over the server's ``encoder`` and
    ``decoder_step`` models."""
    return graph_translator(graph.sibling("encoder"), graph.sibling("decoder_step"))


def translate_strings(
    strings: RemoteGraph, translator: Translator, texts: list[str]
) -> list[Translation]:
    """Translations by the string graph, without scores (the graph gives none); the texts
    are checked (length, unknown tokens) and empty ones answered here, as the runtime does."""
    rows = [row for row, text in enumerate(texts) if translator.tokenize(text)]
    translations = [translator.checked(Translation([], [], "", score=0.0)) for _ in texts]
    if rows:
        sources = [texts[row] for row in rows]
        _, tokens, unknown = translator.source_batch(sources)
        answers = strings(text=np.array(sources, dtype=object))["translation"]
        for row, source_tokens, answer, row_unknown in zip(
            rows, tokens, answers, unknown, strict=True
        ):
            text = answer.decode("utf-8", "replace") if isinstance(answer, bytes) else str(answer)
            translations[row] = translator.checked(
                Translation(source_tokens, translator.tokenize(text), text, row_unknown)
            )
    return translations
