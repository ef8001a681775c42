"""Translation: the attention decoders against numpy oracles, the step models against the
trained model, masking, the shared battery on tiny Luong and Bahdanau runs, beam search and
the string graph through every path, and a --pairs file in words mode."""

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from keras_rnn import reference
from keras_rnn.runs import finished_run, load_trained_model
from keras_rnn.tasks.translate import ATTENTIONS, Config
from keras_rnn.tasks.translate import model as seq2seq
from keras_rnn.tasks.translate.decoding import keras_translator
from serving.runtime.decoding import log_softmax
from serving.runtime.translate import as_json, is_iso_date
from serving.runtime.vocab import END, TokenVocabulary
from tests.battery import TaskBattery, TaskCase, assert_same_answer, refusal
from tests.conftest import run_without_tensorflow
from tests.test_runs import snapshot

SOURCE_SIZE, TARGET_SIZE = 12, 11


def tiny_config(cell: str, attention: str, layers: int = 1) -> Config:
    return Config(
        cell=cell, attention=attention, units=8, embedding_size=6, attention_units=7, layers=layers
    )


def batch(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded source and target ids, one row of each fully valid."""
    source = rng.integers(1, SOURCE_SIZE, size=(3, 9)).astype("int32")
    source[0, 5:] = 0
    source[1, 7:] = 0
    target = rng.integers(1, TARGET_SIZE, size=(3, 6)).astype("int32")
    target[2, 4:] = 0
    return source, target


def built(cell: str, attention: str, layers: int = 1):
    import keras

    keras.utils.set_random_seed(0)
    config = tiny_config(cell, attention, layers)
    model = seq2seq.build_model(config, SOURCE_SIZE, TARGET_SIZE)
    # Weights away from their small initial values, so that differences show.
    rng = np.random.default_rng(1)
    for weight in model.weights:
        weight.assign(rng.normal(0, 0.5, size=weight.shape).astype("float32"))
    return config, model


def encoded(model, config, source) -> dict[str, np.ndarray]:
    outputs = seq2seq.encoder_model(model, config)({"source": source})
    return {name: np.asarray(value) for name, value in outputs.items()}


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_decoder_equals_the_numpy_oracle(attention):
    """The training model's logits, from the encoder's outputs on, equal the equations
    written in numpy (reference.attend, reference.bahdanau_decoder, reference.gru_forward)."""
    config, model = built("gru", attention)
    source, target = batch(np.random.default_rng(0))
    logits = np.asarray(model({"source": source, "target_in": target})["logits"])
    encoder = encoded(model, config, source)
    layer = model.get_layer
    embedded = layer("target_embedding").embeddings.numpy()[target]
    source_mask = source != 0
    if attention == "bahdanau":
        step = layer("decoder").step
        gru = [w.numpy() for w in step.recurrent.weights]
        hidden = reference.bahdanau_decoder(
            embedded,
            encoder["values"],
            encoder["keys"],
            source_mask,
            encoder["state_h"],
            step.query.kernel.numpy(),
            step.attention.scale.numpy(),
            gru,
        )
    else:
        gru = [w.numpy() for w in layer("decoder").weights]
        hidden = reference.gru_forward(embedded, *gru, h0=encoder["state_h"])
        if attention != "none":
            query = hidden
            if attention != "luong-dot":
                query = hidden @ layer("attention_query").kernel.numpy()
            scale = layer("attention").scale.numpy() if attention == "luong-concat" else None
            context, _ = reference.attend(
                query, encoder["values"], encoder["keys"], source_mask, scale
            )
            hidden = np.tanh(
                np.concatenate([context, hidden], -1) @ layer("attention_output").kernel.numpy()
            )
    dense = layer("logits")
    expected = hidden @ dense.kernel.numpy() + dense.bias.numpy()
    valid = target != 0
    np.testing.assert_allclose(logits[valid], expected[valid], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ATTENTIONS)
def test_stepping_the_decoder_gives_the_trained_models_logits(cell, attention):
    """encoder_model then decoder_step_model, one target token at a time, give the logits of
    the whole-sequence model, and attention weights that sum to 1 over valid source steps."""
    config, model = built(cell, attention, layers=2)
    source, target = batch(np.random.default_rng(2))
    logits = np.asarray(model({"source": source, "target_in": target})["logits"])
    encoder = encoded(model, config, source)
    step = seq2seq.decoder_step_model(model, config)
    names = seq2seq.state_names(config)
    states = {name: encoder[name] for name in names}
    for t in range(target.shape[1]):
        feed = {"token": target[:, t : t + 1], "source": source} | states
        outputs = step(feed | {"values": encoder["values"], "keys": encoder["keys"]})
        states = {name: np.asarray(outputs[f"next_{name}"]) for name in names}
        valid = target[:, t] != 0
        np.testing.assert_allclose(
            np.asarray(outputs["logits"])[valid], logits[valid, t], atol=1e-5, rtol=1e-5
        )
        weights = np.asarray(outputs["attention"])
        if attention != "none":
            np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
            assert np.all(weights[source == 0] == 0)


@pytest.mark.parametrize("attention", ["bahdanau", "luong-general", "none"])
def test_padding_more_source_or_target_steps_changes_no_valid_output(attention):
    _, model = built("gru", attention)
    source, target = batch(np.random.default_rng(3))
    logits = np.asarray(model({"source": source, "target_in": target})["logits"])
    longer = {
        "source": np.pad(source, ((0, 0), (0, 5))),
        "target_in": np.pad(target, ((0, 0), (0, 3))),
    }
    padded = np.asarray(model(longer)["logits"])[:, : target.shape[1]]
    valid = target != 0
    np.testing.assert_allclose(padded[valid], logits[valid], atol=1e-5)
    changed = source.copy()
    changed[0, 0] = changed[0, 0] % (SOURCE_SIZE - 1) + 1  # another valid id: outputs move
    moved = np.asarray(model({"source": changed, "target_in": target})["logits"])
    assert np.abs(moved[0] - logits[0]).max() > 1e-3


def test_a_saved_model_loads_and_gives_the_same_logits(tmp_path):
    import keras

    _, model = built("lstm", "bahdanau")
    source, target = batch(np.random.default_rng(4))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    feed = {"source": source, "target_in": target}
    np.testing.assert_array_equal(
        np.asarray(loaded(feed)["logits"]), np.asarray(model(feed)["logits"])
    )


# A tiny model trained just enough to end its outputs (after about 10 tokens) rather than
# write each up to the length limit (39 tokens): training, the export, export.verify and the
# serving tests decode again and again, in a quarter of the steps. Few test pairs: training
# decodes them (greedy, beam search, untrained model), the export and export.verify again.
TINY_MODEL = ("--units", "8", "--embedding-size", "8", "--patience", "0")
TEST_PAIRS = 10
TINY = (*TINY_MODEL, "--epochs", "3", "--learning-rate", "0.05", "--train-pairs", "600")
TINY += ("--val-pairs", "50", "--test-pairs", str(TEST_PAIRS))
QUERIES = ("23 November 2026", "2026年11月23日", "", "zzz 23 ñov 2026", "monday 23/11/2026")


def keras_translations(run_dir: Path, texts=QUERIES, beam: int = 0) -> dict:
    """What serving.predict --json prints for ``texts``, translated by Keras."""
    run, config = finished_run(run_dir)
    translator = keras_translator(load_trained_model(run), config, run_dir / "vocab")
    translations = translator.beam(texts, beam, 1.0) if beam else translator.greedy(texts)
    return as_json(texts, translations)


def translate_case(attention: str, cell: str) -> TaskCase:
    return TaskCase(
        task="translate",
        training=(*TINY, "--attention", attention, "--cell", cell),
        graphs=("translate", "encoder", "decoder_step"),
        metrics=frozenset(
            f"{decoding}_{name}"
            for decoding in ("greedy", "beam")
            for name in ("exact_match", "token_accuracy", "bleu", "chrf")
        )
        | {"test_pairs", "untrained_greedy_exact_match", "examples"}
        | {"heldout_formats_pairs", "greedy_exact_match_heldout_formats"},
        plots=("attention_0", "attention_1", "attention_2"),
        assets=("vocab/source.json", "vocab/target.json"),
        query=QUERIES,
        answer=keras_translations,
        bad_training=(
            refusal(["--cell", "simple"], "--cell: invalid choice: 'simple'"),
            refusal(["--no-bidirectional"], "--no-bidirectional (not flags of --task translate"),
            refusal(["--attention", "luong-dot", "--attention-units", "8"], "--attention-units"),
            refusal(["--reverse"], "--reverse does not apply without --pairs"),
            refusal(["--pairs", "missing.txt"], "pairs file not found: missing.txt"),
            refusal(["--pairs", "."], ". is a folder, not a pairs file"),
            refusal(["--attention", "other"], "invalid choice: 'other'"),
            refusal(["--beam-width", "0", "--length-penalty", "2"], "it ranks beams"),
        ),
        bad_predict=(
            refusal(["x" * 400], "longer than the model's limit"),
            refusal([], "needs texts to translate"),
            refusal(["a", "--length-penalty", "0.5"], "--length-penalty applies to beam search"),
            refusal(["a", "--beam", "x"], "--beam: must be an integer >= 0"),
        ),
        # Bahdanau's decoder is a layer of ours, registered by its module
        model_imports=("keras_rnn.tasks.translate.model",) if attention == "bahdanau" else (),
    )


LUONG = translate_case("luong-concat", "gru")
BAHDANAU = translate_case("bahdanau", "lstm")


class TestLuongTranslateBattery(TaskBattery):
    case = LUONG


class TestBahdanauTranslateBattery(TaskBattery):
    case = BAHDANAU


@pytest.fixture(scope="module", params=[LUONG, BAHDANAU], ids=["luong-concat", "bahdanau"])
def translate_run(request, tiny_runs) -> Path:
    """The battery's exported runs, for the task's own checks."""
    return request.param.exported(tiny_runs)


def test_metrics_vocabularies_and_decoding_parity(translate_run):
    metrics = json.loads((translate_run / "metrics.json").read_text())
    assert metrics["test_pairs"] == TEST_PAIRS and len(metrics["examples"]) == 5
    assert 0 <= metrics["greedy_exact_match"] <= 1 and 0 <= metrics["beam_chrf"] <= 100
    assert metrics["heldout_formats_pairs"] == TEST_PAIRS  # the test dates in the held-out formats
    assert 0 <= metrics["greedy_exact_match_heldout_formats"] <= 1
    config = json.loads((translate_run / "config.json").read_text())
    assert config["data"]["examples"]["heldout_formats"] == TEST_PAIRS
    target = json.loads((translate_run / "vocab" / "target.json").read_text())
    assert (target["start_id"], target["end_id"], target["mode"]) == (2, 3, "characters")
    assert set(target["tokens"][4:]) == set("0123456789-")
    report = json.loads((translate_run / "export" / "parity.json").read_text())
    assert report["graphs"][0]["formats"] == ["savedmodel"]  # strings in: no ONNX
    decode = report["decode"]  # the whole test split, decoded by Keras and by each export
    assert decode["ok"]
    for decoding in ("greedy onnx", "beam onnx", "greedy savedmodel translate"):
        assert decode[decoding] | {"largest_score_difference": 0} == {
            "sources": TEST_PAIRS,
            "different": 0,
            "first_different": [],
            "largest_score_difference": 0,
        }
    for decoding in ("greedy onnx", "beam onnx"):  # Keras's and onnxruntime's scores agree
        assert 0 <= decode[decoding]["largest_score_difference"] <= 2e-4


def test_each_translation_scores_its_ids_as_the_step_function_does(translate_run):
    """Greedy and beam scores: the log-probability of the ids written (the end id included
    where the output ended), recomputed step by step, divided by their count ** the length
    penalty (1 for greedy); finite and at most 0. Dates runs flag invalid dates."""
    run, config = finished_run(translate_run)
    translator = keras_translator(load_trained_model(run), config, translate_run / "vocab")
    target = TokenVocabulary.load(translate_run / "vocab" / "target.json")
    texts = [QUERIES[0], QUERIES[1], QUERIES[4]]
    for translations, penalty in (
        (translator.greedy(texts), 1.0),
        (translator.beam(texts, 3, 0.5), 0.5),
    ):
        for text, translation in zip(texts, translations, strict=True):
            ids = list(target.encode(translation.tokens)[0])
            ids += [END] if len(ids) < translator.max_length else []
            source, _, _ = translator.source_batch([text])
            states, previous, total = translator.encode(source), translator.start_id, 0.0
            for token in ids:
                logits, states, _ = translator.step(np.array([[previous]], np.int32), states)
                total += log_softmax(np.asarray(logits, np.float64))[0, token]
                previous = token
            assert np.isfinite(translation.score) and translation.score <= 0
            # The logits are float32 and come from a batch of 3 texts (beam: 9 rows) there, of
            # 1 row here: which kernel TensorFlow picks for a shape depends on the processor,
            # so their last bits may differ (up to 1.5e-7 in the score, seen without AVX-512).
            assert translation.score == pytest.approx(total / len(ids) ** penalty, abs=1e-6)
            assert translation.valid_date == is_iso_date(translation.text)
    assert translator.greedy([""])[0].score == 0.0


def test_onnxruntime_beam_search_translates_exactly_as_keras(translate_run):
    """The served query with --beam 3 (the battery checks greedy), TensorFlow blocked."""
    result = run_without_tensorflow(
        "serving.predict", translate_run, *QUERIES, "--beam", "3", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert_same_answer(json.loads(result.stdout), keras_translations(translate_run, beam=3), 1e-5)
    rows = json.loads(result.stdout)["translations"]
    assert rows[2]["translation"] == "" and rows[3]["unknown"] == ["z", "ñ"]
    assert "not in the vocabulary, read as unknown: 'z ñ'" in result.stderr


def test_keras_translate_cli_prints_the_same_and_plots(translate_run, tmp_path, capsys):
    from keras_rnn import translate

    capsys.readouterr()
    plot = tmp_path / "attention.png"
    assert translate.main([str(translate_run), *QUERIES, "--json", "--plot", str(plot)]) == 0
    printed = capsys.readouterr()
    rows = json.loads(printed.out)
    assert rows == keras_translations(translate_run)
    assert "not in the vocabulary, read as unknown: 'z ñ'" in printed.err
    for row in rows["translations"]:  # a dates run: each output is checked as a date
        assert row["valid_date"] == is_iso_date(row["translation"]) and row["score"] <= 0
    assert plot.read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def run_copy(tiny_runs, tmp_path) -> Path:
    """A copy of the tiny Luong run (trained, not exported), which a test may change."""
    return Path(shutil.copytree(LUONG.trained(tiny_runs), tmp_path / "run"))


def test_plot_refusals_come_before_tensorflow_and_change_nothing(
    run_copy, tmp_path, monkeypatch, cli_error
):
    """--plot never writes into a run (even with --force), nor over a file of someone else's
    without --force; nothing that cannot be written waits for the translation."""
    from keras_rnn import quiet, translate

    def no_tensorflow(verbose: bool) -> None:
        raise AssertionError("TensorFlow started before the --plot checks")

    monkeypatch.setattr(quiet, "start_tensorflow", no_tensorflow)
    (tmp_path / "theirs.png").write_bytes(b"someone else's")
    before = snapshot(tmp_path)
    for plot, fragment in (
        (run_copy / "model.keras", f"is inside the run directory {run_copy}"),
        (run_copy / "plots" / "new.png", f"is inside the run directory {run_copy}"),
        (tmp_path, "is a folder"),
        ("", "--plot is an empty name"),
        ("/proc/attention.png", "cannot write in /proc"),
        (tmp_path / "a" / "b" / "attention.png", "does not exist: create it first"),
        (tmp_path / "attention", "has no suffix: end it with one of"),
        (tmp_path / "attention.txt", "has the suffix .txt"),
        (tmp_path / "theirs.png", "this project did not write it: pass --force"),
    ):
        cli_error(translate.main, [run_copy, "3 March 2021", "--plot", plot], fragment)
    cli_error(translate.main, [run_copy, "x", "--force"], "--force applies to --plot only")
    for force in ([], ["--force"]):
        argv = [run_copy, "x", "--plot", run_copy / "model.keras", *force]
        cli_error(translate.main, argv, "is inside the run directory")
    assert snapshot(tmp_path) == before


def test_plot_writes_the_format_its_suffix_names_and_replaces_only_its_own(
    run_copy, tmp_path, capsys, cli_error
):
    from keras_rnn import translate

    def translated(*argv) -> str:
        capsys.readouterr()
        assert translate.main([str(run_copy), "3 March 2021", *map(str, argv)]) == 0
        return capsys.readouterr().out

    answer = translated()
    png, jpg, theirs = tmp_path / "a.png", tmp_path / "a.jpg", tmp_path / "theirs.pdf"
    assert translated("--plot", png) == answer and png.read_bytes()[:4] == b"\x89PNG"
    png.write_bytes(png.read_bytes() + b"\0")  # changed, still ours: replaced again
    assert translated("--plot", png) == answer and not png.read_bytes().endswith(b"\0")
    assert translated("--plot", jpg) == answer and jpg.read_bytes()[:3] == b"\xff\xd8\xff"
    assert translated("--plot", jpg) == answer  # ours (a JPEG comment): replaced again
    tif = tmp_path / "a.tif"
    assert translated("--plot", tif) == answer
    cli_error(translate.main, [run_copy, "x", "--plot", tif], "pass --force")  # no mark in TIFF
    theirs.write_bytes(b"someone else's")
    assert translated("--plot", theirs, "--force") == answer
    assert theirs.read_bytes()[:4] == b"%PDF"
    assert sorted(os.listdir(tmp_path)) == ["a.jpg", "a.png", "a.tif", "run", "theirs.pdf"]


def test_translate_cli_refuses_other_runs_and_bad_flags(trained_run, translate_run, cli_error):
    from keras_rnn import translate

    cli_error(translate.main, [trained_run("lstm"), "x"], "is a sine run")
    cli_error(translate.main, [translate_run, "x", "--beam", "x"], "--beam: must be an integer")


def test_other_tasks_take_no_texts(exported_run, cli_error):
    from serving.predict import main as predict_main

    argv = [exported_run("lstm"), "hello", "--window", "0.1,0.2"]
    cli_error(predict_main, argv, "sine runs take no texts as arguments: got 'hello'")


def anki_file(path) -> str:
    """A small English-Chinese file in the Tatoeba/Anki format (with attribution)."""
    people = [
        ("i am", "我"),
        ("he is", "他"),
        ("she is", "她"),
        ("we are", "我们"),
        ("you are", "你"),
    ]
    states = [
        ("happy", "很高兴"),
        ("tired", "很累"),
        ("busy", "很忙"),
        ("hungry", "饿了"),
        ("at home", "在家"),
        ("here", "在这里"),
        ("late", "迟到了"),
        ("ready", "准备好了"),
    ]
    lines = [
        f"{who.capitalize()} {state}.\t{zh_who}{zh_state}。\tCC-BY 2.0 (France) #{i}\n"
        for i, ((who, zh_who), (state, zh_state)) in enumerate(
            (p, s) for p in people for s in states
        )
    ]
    path.write_text("".join(lines * 6), encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_a_pairs_file_trains_in_words_and_serves_the_same_without_tensorflow(tmp_path, capsys):
    """--pairs: English words and punctuation in, Chinese characters out (words mode, CJK one
    by one); Keras and onnxruntime give the same translations."""
    from export.__main__ import main as export_main
    from keras_rnn import train, translate

    run_dir = tmp_path / "run"
    argv = [
        "--task",
        "translate",
        *TINY_MODEL,
        *("--epochs", "1"),
        "--pairs",
        anki_file(tmp_path / "cmn.txt"),
        "--prefixes",
        "course",
    ]
    argv += ["--val-pairs", "20", "--test-pairs", "20", "--run-dir", str(run_dir)]
    assert train.main(argv) == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["kept"] == 240 and config["data"]["tokens"] == "words"
    assert "heldout_formats_pairs" not in json.loads((run_dir / "metrics.json").read_text())
    source = json.loads((run_dir / "vocab" / "source.json").read_text())
    assert {"i", "am", "happy", "."} <= set(source["tokens"]) and source["mode"] == "words"
    assert export_main([str(run_dir)]) == 0
    queries = ["I am happy.", "You are at home!", ""]
    capsys.readouterr()
    assert translate.main([str(run_dir), *queries, "--json"]) == 0
    keras_rows = json.loads(capsys.readouterr().out)["translations"]
    result = run_without_tensorflow("serving.predict", run_dir, *queries, "--json")
    assert result.returncode == 0, result.stderr
    assert_same_answer(json.loads(result.stdout)["translations"], keras_rows, 1e-5)
    assert all("valid_date" not in row for row in keras_rows)  # not dates: nothing to check
    assert " " not in keras_rows[0]["translation"]  # Chinese characters join without spaces
    assert keras_rows[1]["unknown"] == ["!"]


def test_the_savedmodel_translate_signature_refuses_a_source_over_the_limit(translate_run):
    import tensorflow as tf

    saved = tf.saved_model.load(str(translate_run / "export" / "savedmodel" / "translate" / "1"))
    serve = saved.signatures["serving_default"]
    out = serve(text=tf.constant(["23 November 2026", ""]))["translation"].numpy()
    assert out[1] == b"" and len(out[0]) > 0
    limit = json.loads((translate_run / "vocab" / "target.json").read_text())["max_length"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"the model limit of {limit} tokens"):
        serve(text=tf.constant(["x" * 400]))


@pytest.mark.parametrize("length_penalty", [0.0, 0.5, 1.0])
def test_score_parity_is_per_id_whatever_the_length_penalty(length_penalty):
    """Each id's log-probability may differ by up to SCORE_ATOL between Keras and
    onnxruntime, so a beam score (a sum / count ** penalty) by count ** (1 - penalty) times
    that: the parity check compares per id, and a long translation stays within it."""
    from keras_rnn.tasks.translate.decoding import SCORE_ATOL, compared
    from serving.runtime.decoding import normalised
    from serving.runtime.translate import Translation

    tokens = list("2021-03-03")  # 10 tokens and the end id: count 11
    sums = (-3.0, -3.0 + 11 * SCORE_ATOL * 0.9)  # each id 0.9 * SCORE_ATOL apart
    keras_side, onnx_side = (
        [Translation([], tokens, "".join(tokens), score=normalised(s, 11, length_penalty))]
        for s in sums
    )
    report = compared(keras_side, onnx_side, length_penalty)
    assert report["largest_score_difference"] == pytest.approx(0.9 * SCORE_ATOL)
    far = [Translation([], tokens, "".join(tokens), score=normalised(-3.1, 11, length_penalty))]
    assert compared(keras_side, far, length_penalty)["largest_score_difference"] > SCORE_ATOL


def test_the_length_limit_covers_every_split_so_evaluation_never_refuses():
    """A small training sample of the dates need not hold their longest way of writing one
    (doubled spaces, a weekday, an ordinal): the limit covers every split, so the test and
    held-out sources that training evaluates fit it (with 600 pairs, one test source had 38
    tokens against a limit of 34 taken from training alone, and training ended in an error)."""
    from keras_rnn.tasks.translate.data import make_datasets
    from serving.runtime.text import tokenize

    data = make_datasets(Config(train_pairs=600))
    longest = max(
        len(tokenize(text, data.mode))
        for pairs in data.splits.values()
        for pair in pairs
        for text in pair
    )
    assert data.max_length == longest + 1
    train_longest = max(
        len(tokenize(text, data.mode)) for pair in data.splits["train"] for text in pair
    )
    assert train_longest < longest  # the case this guards: a split holds a longer text


def test_predict_takes_texts_before_or_after_flags(tiny_runs, capsys):
    """``serving.predict RUN --json TEXT`` reads TEXT as a text (argparse's plain parse had
    already closed the texts at the flag, and answered 'unrecognized arguments')."""
    from serving.predict import main as predict_main

    export = str(LUONG.exported(tiny_runs))
    answers = []
    for argv in ([export, "3 March 2021", "--json"], [export, "--json", "3 March 2021"]):
        capsys.readouterr()
        assert predict_main(argv) == 0, capsys.readouterr().err
        answers.append(capsys.readouterr().out)
    assert answers[0] == answers[1] and '"source": "3 March 2021"' in answers[0]
