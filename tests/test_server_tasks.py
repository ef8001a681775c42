"""python -m serving.server's task models, with TensorFlow blocked in the server: translate,
tagging and sine over TF Serving's REST API (plain HTTP and serving.clients) and the Open
Inference Protocol (tritonclient's HTTP and gRPC clients) answer as serving.predict does, and
translate as the SavedModel `translate` signature does on test-split sentences; a named run
(--run NAME=RUN_DIR) serves beside another of its task; bad input is a one-line 4xx."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

from serving.clients import connect, forecast_with, tag_with, translate_with
from serving.clients.tasks import TASK_BY_OUTPUT
from serving.server.models import RequestError
from serving.server.tasks import TaggingModel, load_models
from tests.conftest import assert_user_error, run_without_tensorflow, serve_without_tensorflow
from tests.test_clients import WINDOW_FLAG, predicted, served
from tests.test_server import post, request
from tests.test_sine import WINDOW
from tests.test_tagging import SENTENCE, TAGGING
from tests.test_translate import LUONG, QUERIES

PROTOCOLS = {"http": triton_http, "grpc": triton_grpc}


@pytest.fixture(scope="module")
def runs(tiny_runs, exported_run):
    return {
        "translate": LUONG.exported(tiny_runs),
        "tagging": TAGGING.exported(tiny_runs),
        "sine": exported_run("lstm"),
    }


@pytest.fixture(scope="module")
def server(runs, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "stderr.log"
    arguments = [f"--run={run}" for run in runs.values()]
    with serve_without_tensorflow(*arguments, f"--run=dates={runs['translate']}", log=log) as s:
        yield s


@pytest.fixture(scope="module")
def sentences(runs) -> list[str]:
    """A handful of the translate run's test split, and the queries of its tests (an empty
    text, unknown characters)."""
    from keras_rnn.runs import finished_run
    from keras_rnn.tasks.translate.data import read_splits

    _, config = finished_run(runs["translate"])
    return [source for source, _ in read_splits(config)[0]["test"][:8]] + list(QUERIES)


@pytest.fixture(scope="module")
def signature(runs):
    """The SavedModel `translate` signature, in this process (as TF Serving would run it)."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the signature's ops)

    folder = runs["translate"] / "export" / "savedmodel" / "translate" / "1"
    return tf.saved_model.load(str(folder)).signatures["serving_default"]


def triton_infer(server, protocol: str, model: str, inputs, parameters=None, binary=True):
    """tritonclient's answer: each output as a numpy array (strings decoded)."""
    module = PROTOCOLS[protocol]
    client = module.InferenceServerClient(server.http if protocol == "http" else server.grpc)
    tensors = []
    for name, (datatype, array) in inputs.items():
        tensor = module.InferInput(name, list(array.shape), datatype)
        if protocol == "http":
            tensor.set_data_from_numpy(array, binary_data=binary)
        else:
            tensor.set_data_from_numpy(array)
        tensors.append(tensor)
    result = client.infer(model, tensors, parameters=parameters)
    response = result.get_response(as_json=True) if protocol == "grpc" else result.get_response()
    outputs = [output["name"] for output in response["outputs"]]
    client.close()
    return {name: _decoded(result.as_numpy(name)) for name in outputs}


def _decoded(array: np.ndarray) -> np.ndarray:
    if array.dtype != object:
        return array
    return np.vectorize(lambda v: v.decode() if isinstance(v, bytes) else v, otypes=[object])(array)


def texts(values) -> tuple[str, np.ndarray]:
    return "BYTES", np.array(values, dtype=object)


def unpadded(row) -> list[str]:
    return [value for value in row if value != ""]


def test_translate_answers_as_the_savedmodel_and_predict_on_every_protocol(
    server, runs, sentences, signature
):
    import tensorflow as tf

    saved = [t.decode() for t in signature(text=tf.constant(sentences))["translation"].numpy()]
    expected = predicted(runs["translate"], *sentences)["translations"]
    assert [row["translation"] for row in expected] == saved  # the reference agrees with itself

    assert post(server, "/v1/models/translate:predict", {"instances": sentences}) == (
        200,
        {"predictions": saved},
    )
    columns = {"outputs": saved}
    assert post(server, "/v1/models/translate:predict", {"inputs": sentences}) == (200, columns)
    body = {"inputs": {"text": sentences}, "signature_name": "serving_default"}
    assert post(server, "/v1/models/translate/versions/1:predict", body) == (200, columns)
    client = connect(server.url)
    assert translate_with(client, sentences) == saved
    client.close()

    for protocol, binary in (("http", True), ("http", False), ("grpc", True)):
        outputs = triton_infer(
            server, protocol, "translate", {"text": texts(sentences)}, None, binary
        )
        assert list(outputs["translation"]) == saved
        assert [unpadded(row) for row in outputs["unknown"]] == [r["unknown"] for r in expected]
        np.testing.assert_allclose(
            outputs["score"], [row["score"] for row in expected], rtol=0, atol=1e-5
        )
    assert any(row["unknown"] for row in expected)  # the queries hold unknown characters


def test_beam_search_takes_request_parameters_and_answers_as_predict(server, runs, sentences):
    expected = predicted(runs["translate"], *sentences, "--beam", "3", "--length-penalty", "0.5")
    parameters = {"beam_width": 3, "length_penalty": 0.5}
    for protocol in PROTOCOLS:
        outputs = triton_infer(
            server, protocol, "translate", {"text": texts(sentences)}, parameters
        )
        rows = expected["translations"]
        assert list(outputs["translation"]) == [row["translation"] for row in rows]
        np.testing.assert_allclose(outputs["score"], [r["score"] for r in rows], rtol=0, atol=1e-5)
    greedy = predicted(runs["translate"], *sentences)["translations"]
    assert [r["score"] for r in rows] != [r["score"] for r in greedy]  # a beam was searched


def test_a_named_run_serves_its_task_model_and_prefixed_graphs_beside_another(server, sentences):
    default = triton_infer(server, "http", "translate", {"text": texts(sentences)})
    named = triton_infer(server, "grpc", "dates", {"text": texts(sentences)})
    assert list(named["translation"]) == list(default["translation"])
    assert request(server, "GET", "/v1/models/dates.encoder")[0] == 200
    assert (
        request(server, "GET", "/v2/models/dates.decoder_step")[1]["name"] == "dates.decoder_step"
    )
    status, answer = request(server, "GET", "/v1/models/dates.translate")
    assert status == 404 and "Latest(dates.translate)" in answer["error"]


def test_metadata_describes_the_task_models(server, signature):
    status, metadata = request(server, "GET", "/v2/models/translate")
    assert status == 200 and metadata["platform"] == "keras_rnn"
    assert metadata["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert [o["name"] for o in metadata["outputs"]] == ["translation", "unknown", "score"]
    client = triton_grpc.InferenceServerClient(server.grpc)
    grpc_metadata = client.get_model_metadata("tagging", as_json=True)
    assert [o["name"] for o in grpc_metadata["outputs"]] == ["items", "tags", "unknown"]
    assert client.is_model_ready("sine")
    client.close()

    # TF Serving's metadata of `translate` is the SavedModel signature's, name for name.
    status, answer = request(server, "GET", "/v1/models/translate/metadata")
    found = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    inputs, outputs = signature.structured_input_signature[1], signature.structured_outputs
    for side, specs in (("inputs", inputs), ("outputs", outputs)):
        assert set(found[side]) == set(specs)
        for name, spec in specs.items():
            assert found[side][name]["dtype"] == "DT_STRING" == f"DT_{spec.dtype.name.upper()}"
            dims = [int(d["size"]) for d in found[side][name]["tensor_shape"]["dim"]]
            assert dims == [-1 if size is None else size for size in spec.shape.as_list()]
    for model in ("tagging", "sine"):
        status, answer = request(server, "GET", f"/v1/models/{model}/metadata")
        outputs = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]["outputs"]
        assert {TASK_BY_OUTPUT.get(name) for name in outputs} >= {model}


def test_tagging_answers_as_predict(server, runs):
    expected = predicted(runs["tagging"], "--text", SENTENCE)
    assert expected["unknown"] == ["zebra"]
    assert post(server, "/v1/models/tagging:predict", {"instances": [SENTENCE]}) == (
        200,
        {"predictions": [expected]},
    )
    short = predicted(runs["tagging"], "--text", "the dog")
    client = connect(server.url)
    assert tag_with(client, [SENTENCE, "the dog"]) == [expected, short]
    client.close()
    for protocol in PROTOCOLS:
        outputs = triton_infer(server, protocol, "tagging", {"text": texts([SENTENCE, "the dog"])})
        for row, want in enumerate((expected, short)):
            assert {key: unpadded(outputs[key][row]) for key in want} == want


def test_sine_answers_as_predict(server, runs):
    windows = np.stack([WINDOW, WINDOW[::-1]]).astype(np.float32)
    expected = [
        predicted(runs["sine"], "--window=" + ",".join(f"{v:.9g}" for v in window))
        for window in windows
    ]
    client = connect(server.url)
    answers = [forecast_with(client, windows)]
    client.close()
    status, rows = post(server, "/v1/models/sine:predict", {"instances": windows.tolist()})
    assert status == 200
    answers.append(rows["predictions"])
    for protocol in PROTOCOLS:
        outputs = triton_infer(server, protocol, "sine", {"window": ("FP32", windows)})
        answers.append(
            [
                {name: outputs[name][row].tolist() for name in want}
                for row, want in enumerate(expected)
            ]
        )
    for answer in answers:
        for got, want in zip(answer, expected, strict=True):
            assert set(got) == set(want)
            for name in want:
                np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-6)


def test_the_clients_cli_needs_only_the_url_and_the_model(server, runs):
    url = ["--url", server.url]
    answer = served("--model", "translate", *QUERIES, *url)
    expected = predicted(runs["translate"], *QUERIES)["translations"]
    assert answer["translations"] == [
        {"source": row["source"], "translation": row["translation"]} for row in expected
    ]
    assert served("--model", "tagging", "--text", SENTENCE, *url) == predicted(
        runs["tagging"], "--text", SENTENCE
    )
    sine = served("--model", "sine", WINDOW_FLAG, *url)
    for name, values in predicted(runs["sine"], WINDOW_FLAG).items():
        np.testing.assert_allclose(sine[name], values, rtol=0, atol=1e-6)
    result = run_without_tensorflow("serving.clients", "--model", "dates", QUERIES[0], *url)
    assert result.returncode == 0 and result.stdout.strip() == expected[0]["translation"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "encoder", "x"], "model 'encoder' at http"),
        (["--model", "translate", "x", "--beam", "3"], "TF Serving's API translates greedily"),
        (["--model", "tagging", "--window", "1"], "--window: not an option for tagging"),
        (["--model", "tagging", "--text", ""], "input text element 0 is empty"),
        (["--model", "sine", "x", WINDOW_FLAG], "sine models take no texts"),
        (["--model", "nothing", "x"], "model 'nothing' is not served"),
    ],
)
def test_the_clients_cli_refuses_in_one_line(server, argv, message, cli_error):
    from serving.clients.__main__ import main

    cli_error(main, [*argv, "--url", server.url], message)


LONG = "x" * 400
BAD_REQUESTS = [  # model, inputs, parameters, what the 400 says
    ("translate", {"text": texts([LONG])}, None, "longer than the model's limit"),
    ("translate", {"text": texts(["a"])}, {"beam": 2}, "unknown parameter 'beam'"),
    ("translate", {"text": texts(["a"])}, {"beam_width": 0}, "beam_width must be 1 (greedy) to"),
    ("translate", {"text": texts(["a"])}, {"beam_width": 65}, "beam_width must be 1 (greedy) to"),
    ("translate", {"text": texts(["a"])}, {"beam_width": "3"}, "beam_width must be an integer"),
    ("translate", {"text": texts(["a"])}, {"length_penalty": 0.5}, "applies to beam search"),
    ("translate", {"text": texts([b"\xff21 May"])}, None, "element 0 is not UTF-8"),
    ("translate", {"text": ("FP32", np.ones(2, np.float32))}, None, "text is BYTES, got FP32"),
    ("translate", {"text": texts([["a"]])}, None, "input text has shape [-1]"),
    ("tagging", {"text": texts(["the", ""])}, None, "input text element 1 is empty"),
    ("sine", {"window": ("FP32", np.ones((1, 3, 1), np.float32))}, None, "shape [-1, -1]"),
    ("sine", {"wind": ("FP32", np.ones((1, 3), np.float32))}, None, "takes inputs window"),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("model, inputs, parameters, message", BAD_REQUESTS)
def test_bad_input_is_a_one_line_refusal(server, protocol, model, inputs, parameters, message):
    with pytest.raises(InferenceServerException) as error:
        triton_infer(server, protocol, model, inputs, parameters)
    status = "400" if protocol == "http" else "StatusCode.INVALID_ARGUMENT"
    assert error.value.status() == status and message in error.value.message()
    assert "\n" not in error.value.message()


@pytest.mark.parametrize(
    "body, message",
    [
        ({"instances": [LONG]}, "longer than the model's limit"),
        ({"instances": ["a"], "parameters": {"beam_width": 2}}, "unknown key(s) parameters"),
        ({"instances": [3]}, "input text must hold strings, got int"),
        ({"inputs": {"text": ["a"], "other": ["b"]}}, "takes inputs text, not other"),
        ({"instances": [{"b64": "/w=="}]}, "element 0 is not UTF-8"),
        ({"inputs": []}, "input text is empty"),
    ],
)
def test_bad_rest_requests_are_a_400(server, body, message):
    status, answer = post(server, "/v1/models/translate:predict", body)
    assert status == 400 and message in answer["error"]
    assert post(server, "/v1/models/translate:predict", {"instances": ["1 May 2020"]})[0] == 200


def test_runs_that_would_share_a_name_are_refused_at_start(runs):
    translate_run, sine_run = runs["translate"], runs["sine"]
    result = run_without_tensorflow(
        "serving.server", "--run", translate_run, "--run", translate_run, "--port", "0"
    )
    assert_user_error(result.returncode, result.stderr, "graph encoder is in both", "NAME=RUN_DIR")
    result = run_without_tensorflow(
        "serving.server", f"--run=encoder={sine_run}", f"--run={translate_run}", "--port", "0"
    )
    assert_user_error(result.returncode, result.stderr, "model encoder is served from both")
    result = run_without_tensorflow("serving.server", "--run", "dates=", "--port", "0")
    assert_user_error(result.returncode, result.stderr, "'dates=' names no run directory")


def test_a_named_translate_run_has_no_note_of_a_savedmodel_graph(runs):
    """The translate task model stands for the SavedModel-only graph `translate`, named or
    not: the server prints no "not serving" note for it."""
    registry, skipped = load_models([runs["translate"], ("dates", runs["translate"])])
    assert {"translate", "dates"} <= set(registry.tasks)
    assert skipped == {}


def test_a_whitespace_text_to_a_token_tagger_names_the_request_field():
    """The runtime's refusal of a text without items names the input, not the CLI's flag."""
    model = TaggingModel.__new__(TaggingModel)  # a token tagger refuses before running
    model.name, model.tagger = "tagging", SimpleNamespace(runtime={"unit": "token"})
    model.vocab, model.tag_names = None, []
    with pytest.raises(RequestError, match="input text element 0 is empty") as refused:
        model.infer({"text": np.array([b" \t "], dtype=object)}, {})
    assert "--text" not in str(refused.value)
