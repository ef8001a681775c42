"""Translation through a server: the string graph where it is served, else the runtime's
decoding over the server's encoder and decoder step."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from serving.clients.remote import RemoteGraph
from serving.errors import UserError
from serving.runtime.translate import (
    Translation,
    Translator,
    as_json,
    check_beam_flags,
    graph_translator,
    translate_texts,
)
from serving.runtime.vocab import unknown_note

STRING_GRAPH = "translate"  # translate's SavedModel graph: texts in, translations out


def remote_translate(graph: RemoteGraph, args: argparse.Namespace) -> tuple[dict, str]:
    """``serving.runtime.translate.predict`` through the server: greedy translations by its
    ``translate`` model (strings in and out) where it has one, else (and with ``--beam``)
    the runtime's decoding over its ``encoder`` and ``decoder_step`` models."""
    if not args.texts:
        raise UserError('a translate run needs texts to translate: RUN_DIR "text" ...')
    beam = args.beam or 0
    check_beam_flags(beam, args.length_penalty)
    if graph.name == STRING_GRAPH and beam > 1:
        raise UserError(
            f"graph {STRING_GRAPH} decodes greedily: leave out --graph to decode with --beam "
            "through encoder and decoder_step"
        )
    translator = remote_translator(graph)
    strings = graph if graph.name == STRING_GRAPH else graph.sibling(STRING_GRAPH)
    if beam <= 1 and (graph.name == STRING_GRAPH or strings.served()):
        translations = translate_strings(strings, translator, args.texts)
    else:
        translations = translate_texts(translator, args.texts, beam, args.length_penalty)
    return as_json(args.texts, translations), "\n".join(t.text for t in translations)


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
    unknown_tokens = sorted({token for t in translations for token in t.unknown})
    if unknown_tokens:
        print(unknown_note(unknown_tokens, "source token(s)"), file=sys.stderr)
    return translations
