"""--mixed-precision: the policy per device, float32 outputs, loss scaling for float16 only,
and a mixed run that still exports float32 graphs at parity, fused."""

import json
import zipfile
from types import SimpleNamespace

import keras
import pytest
import tensorflow as tf

from keras_rnn import precision, train
from keras_rnn.config import RuntimeConfig
from keras_rnn.errors import UserError
from keras_rnn.runs import RunDir
from tests.conftest import tiny_sine

FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f {extra}\n\n"


def cpuinfo(tmp_path, extra: str = ""):
    path = tmp_path / "cpuinfo"
    path.write_text(FLAGS.format(extra=extra))
    return path


@pytest.mark.parametrize(
    ("mixed", "gpu", "extra", "policy"),
    [
        (False, False, "", "float32"),
        (False, True, "avx512_bf16", "float32"),
        (True, True, "", "mixed_float16"),
        (True, False, "avx512_bf16", "mixed_bfloat16"),
        (True, False, "amx_bf16 amx_tile", "mixed_bfloat16"),
    ],
)
def test_policy_per_device(mixed, gpu, extra, policy, tmp_path):
    assert precision.policy_name(mixed, gpu, cpuinfo(tmp_path, extra)) == policy


def test_a_cpu_without_bfloat16_instructions_is_refused(tmp_path):
    with pytest.raises(UserError) as error:
        precision.policy_name(True, False, cpuinfo(tmp_path, "avx512_vnni"))
    message = str(error.value)
    assert "avx512_bf16 or amx_bf16" in message and "slower than float32" in message
    with pytest.raises(UserError, match="cannot be read"):
        precision.policy_name(True, False, tmp_path / "missing")


def test_the_cli_refuses_before_writing_anything(tmp_path, monkeypatch, cli_error):
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("with a GPU, --mixed-precision is float16 and needs no CPU instructions")
    monkeypatch.setattr(precision, "CPUINFO", cpuinfo(tmp_path))
    argv = ["--mixed-precision", "--run-dir", tmp_path / "run", "--units", "4", "--epochs", "1"]
    cli_error(train.main, argv, "--mixed-precision without a GPU needs", "avx512_bf16")
    assert not (tmp_path / "run").exists()


def task_models() -> dict:
    """Every task's training model (decimal addition, both translate decoders), from small
    stand-ins for the data its builder reads."""
    from keras_rnn.tasks.addition import Config as AdditionConfig
    from keras_rnn.tasks.addition import task as addition
    from keras_rnn.tasks.charlm import Config as CharLMConfig
    from keras_rnn.tasks.charlm import model as charlm
    from keras_rnn.tasks.sine import Config as SineConfig
    from keras_rnn.tasks.sine import task as sine
    from keras_rnn.tasks.tagging import Config as TaggingConfig
    from keras_rnn.tasks.tagging import task as tagging
    from keras_rnn.tasks.translate import Config as TranslateConfig
    from keras_rnn.tasks.translate import model as translate

    tags = SimpleNamespace(vocab=SimpleNamespace(size=12), tag_names=["NOUN", "VERB"])
    return {
        "sine": sine.build_model(SineConfig(units=4), SimpleNamespace(mean=1000.0, std=50.0)),
        "addition": addition.build_model(AdditionConfig(units=4), None),
        "decimal": addition.build_model(AdditionConfig(units=4, digits=3), None),
        "charlm": charlm.network(CharLMConfig(units=4, embedding_size=4), 20),
        "tagging": tagging.build_model(TaggingConfig(units=4, embedding_size=4), tags),
        **{
            attention: translate.build_model(
                TranslateConfig(units=4, embedding_size=4, attention=attention), 15, 17
            )
            for attention in ("bahdanau", "luong-general")
        },
    }


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_outputs_stay_float32_under_a_mixed_policy(policy):
    """Built under a mixed policy (no training, no instructions needed), every task's
    recurrent layers compute in the low precision, its outputs in float32, and its variables
    are float32."""
    low = policy.removeprefix("mixed_")
    with precision.dtype_policy(policy):
        models = task_models()
    assert keras.config.dtype_policy().name == "float32"  # restored
    for name, model in models.items():
        recurrent = [
            layer
            for layer in model._flatten_layers()
            if isinstance(layer, keras.layers.RNN | keras.layers.Bidirectional)
        ]
        assert recurrent and all(layer.compute_dtype == low for layer in recurrent), name
        assert all(output.dtype == "float32" for output in model.outputs), name
        assert all(v.dtype == "float32" for v in model.trainable_variables), name


def test_loss_scaling_is_for_float16_only():
    """Keras wraps the optimizer of a mixed_float16 model in a LossScaleOptimizer by itself
    (the trainer compiles with plain Adam); bfloat16 needs none."""
    from keras_rnn.tasks.sine import Config as SineConfig
    from keras_rnn.tasks.sine import task as sine
    from keras_rnn.trainer import compiled_model

    config = SineConfig(units=4)
    data = sine.make_datasets(config)
    strategy = tf.distribute.get_strategy()
    optimizers = {}
    for policy in ("float32", "mixed_bfloat16", "mixed_float16"):
        with precision.dtype_policy(policy):
            model = compiled_model(sine, config, data, RuntimeConfig(), strategy)
        optimizers[policy] = model.optimizer
    assert isinstance(optimizers["mixed_float16"], keras.optimizers.LossScaleOptimizer)
    assert isinstance(optimizers["mixed_float16"].inner_optimizer, keras.optimizers.Adam)
    for policy in ("float32", "mixed_bfloat16"):
        assert not isinstance(optimizers[policy], keras.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize(("saved", "policy"), [(True, "float32"), (False, "mixed_float16")])
def test_resume_refuses_a_change_of_loss_scaling(saved, policy, tmp_path):
    from keras_rnn.tasks.sine import Config as SineConfig
    from keras_rnn.tasks.sine import task as sine
    from keras_rnn.trainer import compiled_model

    config = SineConfig(units=4)
    data = sine.make_datasets(config)
    run = RunDir(tmp_path / "run")
    run.backup.mkdir(parents=True)
    metadata = {"epoch": 1, "batch": -1, "loss_scale": saved}
    (run.backup / "training_metadata.json").write_text(json.dumps(metadata))
    with precision.dtype_policy(policy):
        model = compiled_model(sine, config, data, RuntimeConfig(), tf.distribute.get_strategy())
    with pytest.raises(UserError, match="losing the optimizer's state"):
        precision.check_loss_scaling(run, model)
    metadata["loss_scale"] = not saved
    (run.backup / "training_metadata.json").write_text(json.dumps(metadata))
    precision.check_loss_scaling(run, model)  # the same as before: no complaint


def mixed_precision_available() -> bool:
    flags = precision.cpu_flags() or set()
    return bool(tf.config.list_physical_devices("GPU")) or bool(
        flags & set(precision.BFLOAT16_FLAGS)
    )


@pytest.mark.skipif(not mixed_precision_available(), reason="no GPU, no bfloat16 instructions")
def test_a_mixed_run_saves_and_exports_float32(tiny_runs, trained_run):
    """Trained in a mixed policy (the history differs from the float32 run's), the run's
    model.keras is a float32 model, and its export is at parity and fused."""
    flags = [*tiny_sine("lstm"), "--mixed-precision"]
    run = tiny_runs.exported("sine", flags)
    environment = json.loads((run / "config.json").read_text())["environment"]
    assert environment["mixed_precision"] is True
    assert environment["dtype_policy"] in ("mixed_bfloat16", "mixed_float16")
    with zipfile.ZipFile(run / "model.keras") as archive:
        assert "mixed_" not in archive.read("config.json").decode()
    assert (run / "history.csv").read_text() != (trained_run("lstm") / "history.csv").read_text()
    parity = json.loads((run / "export" / "parity.json").read_text())
    assert parity["ok"] and all(graph["fused"] for graph in parity["graphs"])
    assert all(graph["max_abs_diff_onnx"] <= 1e-5 for graph in parity["graphs"])
