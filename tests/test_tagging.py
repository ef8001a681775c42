"""Sequence tagging (--task tagging): tokenize-derived character tags, CoNLL reading, masked
bidirectional training, fused export with sequence_lens, the onnxruntime tagger, and the shared
battery on a tiny CoNLL run."""

import json
import warnings
from pathlib import Path

import pytest

from keras_rnn import train
from keras_rnn.runs import finished_run, load_trained_model
from keras_rnn.tasks.tagging import Config as TaggingConfig
from keras_rnn.tasks.tagging import task as tagging
from serving.runtime import load_graph
from serving.runtime.tagging import load_tags, tag
from serving.runtime.vocab import Vocabulary
from tests.battery import TaskBattery, TaskCase, refusal
from tests.conftest import run_without_tensorflow


def test_each_character_gets_its_token_type():
    text = 'if x == 10:  # ten\n    s = "a#b"\n'
    tags = tagging.character_tags(text)
    by_char = dict(
        zip(["if", "x", "==", "10", "# ten", '"a#b"'], [0, 3, 5, 8, 13, 27], strict=True)
    )
    expected = {"if": "keyword", "x": "name", "==": "operator", "10": "number"}
    expected |= {"# ten": "comment", '"a#b"': "string"}
    for piece, start in by_char.items():
        assert text[start : start + len(piece)] == piece
        assert set(tags[start : start + len(piece)]) == {expected[piece]}, piece
    assert tags[2] == "whitespace" and tags[18] == "whitespace"  # the space and the newline


def test_pieces_are_whole_lines_no_longer_than_the_limit():
    text = "a = 1\n" * 10 + "b" * 25 + "\n" + "c = 2\n"
    pieces = tagging.line_pieces(text, 12)
    assert pieces[0] == (0, 12) and all(end - start <= 12 for start, end in pieces)
    assert [start for start, _ in pieces[1:]] == [end for _, end in pieces[:-1]]
    assert pieces[-1][1] == len(text)


CONLL = "-DOCSTART- O\n\n" + "".join(
    f"the DET\n{word} {tag}\nruns VERB\n\n"
    for word, tag in [("dog", "NOUN"), ("cat", "NOUN"), ("big", "ADJ")] * 60
)


def test_conll_sentences_and_a_malformed_line(tmp_path, cli_error):
    path = tmp_path / "data.conll"
    path.write_text(CONLL)
    sequences, tags, source = tagging.read_conll(str(path), 100)
    assert len(sequences) == 180 and sequences[0] == ["the", "dog", "runs"]
    assert tags[2] == ["DET", "ADJ", "VERB"] and source["kind"] == "conll"
    path.write_text("the DET\ndog\n")
    argv = ["--task", "tagging", "--conll", path, "--run-dir", tmp_path / "r"]
    cli_error(train.main, argv, "data.conll line 2: expected a token and a tag, got 'dog'")
    path.write_text("\n\n")
    cli_error(train.main, argv, "has no sentences")
    cli_error(train.main, [*argv[:3], tmp_path / "missing", *argv[4:]], "CoNLL file not found")


SENTENCE = "the big dog runs the zebra"  # the served query; "zebra" is not in the vocabulary


def keras_tags(run_dir: Path) -> dict:
    """What serving.predict --json prints for ``--text`` SENTENCE, tagged by Keras."""
    run, config = finished_run(run_dir)
    vocab_path = run_dir / "vocab" / "vocab.json"
    vocab, names = Vocabulary.load(vocab_path), load_tags(vocab_path)
    items = SENTENCE.split()
    ids = vocab.encode(items)[0]
    tags = [names[i - 1] for i in tagging.predict_tags(load_trained_model(run), [ids], config)[0]]
    unknown = sorted({item for item in items if item not in vocab.characters[2:]})
    return {"items": items, "tags": tags, "unknown": unknown}


TAGGING = TaskCase(
    task="tagging",
    training=(
        *("--conll", "{data}/data.conll", "--units", "8", "--epochs", "3"),
        *("--batch-size", "16"),
    ),
    data=(("data.conll", CONLL),),
    graphs=("tagger",),
    metrics=frozenset({"token_accuracy", "macro_f1", "per_tag", "test_items"}),
    query=("--text", SENTENCE),
    answer=keras_tags,
    assets=("vocab/vocab.json",),
    bad_training=(
        refusal(["--max-length", "0"], "--max-length must be positive"),
        refusal(["--conll", "missing.conll"], "CoNLL file not found"),
        refusal(["--conll", "."], ". is a folder, not a CoNLL file"),
    ),
    bad_predict=(refusal(["--text", "   "], "--text is empty"),),
)


class TestTaggingBattery(TaskBattery):
    case = TAGGING


@pytest.fixture(scope="module")
def conll_run(tiny_runs):
    """The battery's tiny CoNLL tagger, exported."""
    return TAGGING.exported(tiny_runs)


def test_metrics_and_per_tag_scores(conll_run):
    metrics = json.loads((conll_run / "metrics.json").read_text())
    assert set(metrics["per_tag"]) == {"ADJ", "DET", "NOUN", "VERB"}  # -DOCSTART- is skipped
    assert 0 <= metrics["macro_f1"] <= 1 and 0 <= metrics["token_accuracy"] <= 1
    supports = sum(scores["support"] for scores in metrics["per_tag"].values())
    assert supports == metrics["test_items"] == 18 * 3


def test_masked_bidirectional_tagger_exports_as_two_fused_grus(conll_run):
    (entry,) = json.loads((conll_run / "export" / "parity.json").read_text())["graphs"]
    assert entry["onnx_op_counts"]["GRU"] == 2
    assert sorted(line.split(": ")[1] for line in entry["recurrent_layers"]) == [
        "GRU (forward, masked (zeros at padding))",
        "GRU (reverse, masked (zeros at padding))",
    ]


def test_predict_prints_a_tag_per_token_and_notes_unknown_ones(conll_run):
    result = run_without_tensorflow("serving.predict", conll_run, "--text", "the zebra runs")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].startswith("'the'\t")
    assert "1 token(s) not in the vocabulary" in result.stderr and "zebra" in result.stderr


def test_left_padded_ids_get_keras_answer_with_a_warning(conll_run):
    """A caller's own ids, padded on the left or with a gap, get Keras's logits from the fused
    export (no silently different numbers), and a warning says what happened."""
    import numpy as np

    from serving.runtime.graph import PaddingWarning

    model = load_trained_model(finished_run(conll_run)[0])
    graph = load_graph(conll_run / "export")
    ids = np.array([[0, 0, 0, 3, 4, 5], [3, 0, 4, 5, 0, 0], [3, 4, 5, 0, 0, 0]], np.int32)
    with pytest.warns(PaddingWarning, match=r"row\(s\) 0, 1 are not right-padded"):
        logits = graph(ids=ids)["tag_logits"]
    expected = np.asarray(model({"ids": ids})["tag_logits"])
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # right padding: no warning
        graph(ids=ids[2:])


def test_default_data_is_tagged_standard_library_source():
    config = TaggingConfig()
    sequences, tags, source = tagging.source_sequences(config)
    assert source["files"] == list(tagging.CORPUS)
    assert all(len(s) == len(t) <= config.max_length for s, t in zip(sequences, tags, strict=True))
    counts = {name: sum(row.count(name) for row in tags) for name in tagging.TAGS}
    assert all(counts.values()), counts  # every tag occurs


def test_long_token_text_is_tagged_in_pieces_as_keras_tags_each(conll_run):
    """354 tokens, over the tagger's 100: pieces of 100 tokens, each tagged as Keras tags it
    alone."""
    run, config = finished_run(conll_run)
    model = load_trained_model(run)
    vocab_path = conll_run / "export" / "vocab" / "vocab.json"
    vocab, names = Vocabulary.load(vocab_path), load_tags(vocab_path)
    text = "\n".join(["the big dog runs the cat"] * 59)
    items, tags, _ = tag(load_graph(conll_run / "export"), vocab, names, text)
    assert items == text.split() and len(tags) == 354
    expected = []
    for start in range(0, 354, 100):
        ids = vocab.encode(items[start : start + 100])[0]
        expected += [names[i - 1] for i in tagging.predict_tags(model, [ids], config)[0]]
    assert tags == expected


def test_long_character_text_gets_a_tag_per_character_piece_by_piece(conll_run):
    """350 characters, over the tagger's 100: one tag per character, and each piece (whole
    lines; a longer line cut after a space, or hard without one) tagged as Keras tags it alone.
    The CoNLL export stands in for a character tagger: the splitting does not depend on what
    the ids mean, only on the runtime facts."""
    run, config = finished_run(conll_run)
    model = load_trained_model(run)
    vocab_path = conll_run / "export" / "vocab" / "vocab.json"
    size, names = len(Vocabulary.load(vocab_path).characters), load_tags(vocab_path)
    vocab = Vocabulary(("", "", *"abcdefghijklmnopqrstuvwxyz"[: size - 2]))
    graph = load_graph(conll_run / "export")
    graph.runtime = {**graph.runtime, "unit": "character"}
    text = "abc de\n" * 5 + "bad cab " * 20 + "\n" + "d" * 120 + "\n" + "ace\n" * 8 + "e"
    assert len(text) == 350
    items, tags, _ = tag(graph, vocab, names, text)
    assert items == list(text) and len(tags) == 350
    pieces = tagging.line_pieces(text, 100, cut_at_space=True)
    assert pieces == [(0, 35), (35, 135), (135, 196), (196, 296), (296, 350)]
    for start, end in pieces:
        ids = vocab.encode(text[start:end])[0]
        alone = [names[i - 1] for i in tagging.predict_tags(model, [ids], config)[0]]
        assert tags[start:end] == alone, (start, end)


def test_pieces_cut_a_long_line_after_a_space():
    text = "aaaa bbbb cccc\n"
    assert tagging.line_pieces(text, 12) == [(0, 12), (12, 15)]
    assert tagging.line_pieces(text, 12, cut_at_space=True) == [(0, 10), (10, 15)]
    assert tagging.line_pieces("x" * 30, 12, cut_at_space=True) == [(0, 12), (12, 24), (24, 30)]
