"""The project installs as packages: the wheel of the whole project and the wheel of the
serving side alone hold their packages, dependencies and console scripts, and the installed
CLIs run from any directory. Built and installed without dependencies and without the
network (pip --no-deps --no-build-isolation --no-index), from a copy of the sources so that
the checkout gets no build folders."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.conftest import BLOCKED_MODULES, REPO

SOURCES = ("pyproject.toml", "README.md", "keras_rnn", "export", "serving")
SCRIPTS = {
    "keras-rnn-train": "keras_rnn.train:main",
    "keras-rnn-generate": "keras_rnn.generate:main",
    "keras-rnn-translate": "keras_rnn.translate:main",
    "keras-rnn-export": "export.__main__:main",
    "keras-rnn-export-model": "export.model.__main__:main",
    "keras-rnn-verify": "export.verify:main",
    "keras-rnn-predict": "serving.predict:main",
    "keras-rnn-serve": "serving.server.__main__:main",
    "keras-rnn-tfserving": "serving.tfserving.__main__:main",
    "keras-rnn-client": "serving.clients.__main__:main",
}
SERVING_SCRIPTS = {name: target for name, target in SCRIPTS.items() if target.startswith("serving")}


def test_the_readme_and_the_design_page_list_every_console_script():
    """The README's sentence that lists the commands, and the design page's CLI table."""
    readme = (REPO / "README.md").read_text()
    start = readme.index("Each CLI is then also a command")
    listed = readme[start : readme.index("\n\n", start)]
    design = (REPO / "docs" / "design.md").read_text()
    for name in SCRIPTS:
        assert f"`{name}`" in listed and f"| `{name}` |" in design, name


def pip(*args: str | Path) -> None:
    command = [sys.executable, "-m", "pip", *map(str, args), "--no-deps", "--no-index", "-q"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> dict[str, Path]:
    """The two wheels, by distribution name: keras_rnn and keras_rnn_serving."""
    folder = tmp_path_factory.mktemp("package")
    source = folder / "source"
    source.mkdir()
    ignored = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=ignored)
        else:
            shutil.copy(REPO / name, source / name)
    for project in (source, source / "serving"):
        pip("wheel", "--no-build-isolation", "--wheel-dir", folder / "dist", project)
    return {wheel.name.split("-")[0]: wheel for wheel in (folder / "dist").glob("*.whl")}


def contents(wheel: Path) -> tuple[set[str], dict[str, str], list[Requirement]]:
    """The wheel's Python files, console scripts and requirements."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/WHEEL"))
        scripts = configparser.ConfigParser()
        scripts.read_string(archive.read(f"{info}/entry_points.txt").decode())
        metadata = Parser().parsestr(archive.read(f"{info}/METADATA").decode())
    files = {name for name in names if name.endswith(".py")}
    requires = [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]
    return files, dict(scripts["console_scripts"]), requires


def source_files(*packages: str) -> set[str]:
    return {
        path.relative_to(REPO).as_posix()
        for package in packages
        for path in (REPO / package).rglob("*.py")
        if "__pycache__" not in path.parts
    }


def pins(path: Path = REPO / "requirements.txt") -> dict[str, str]:
    """The pinned versions of a requirements file and the files it includes, by package name."""
    found = {}
    for line in (line.split("#")[0].strip() for line in path.read_text().splitlines()):
        if line.startswith("-r "):
            found |= pins(path.parent / line.removeprefix("-r ").strip())
        elif line:
            requirement = Requirement(line)
            found[requirement.name] = str(requirement.specifier).removeprefix("==")
    return found


def test_project_wheel_holds_every_package_and_console_script(wheels):
    files, scripts, requires = contents(wheels["keras_rnn"])
    assert files == source_files("keras_rnn", "export", "serving")
    assert scripts == SCRIPTS
    runtime = [r for r in requires if r.marker is None]
    assert {r.name for r in runtime} >= {"tensorflow", "keras", "tf2onnx", "onnxruntime", "numpy"}
    for requirement in runtime:  # the ranges hold the versions measured here
        assert pins()[requirement.name] in requirement.specifier, requirement


def test_serving_wheel_holds_the_serving_package_alone(wheels):
    files, scripts, requires = contents(wheels["keras_rnn_serving"])
    assert files == source_files("serving")
    assert scripts == SERVING_SCRIPTS
    assert {r.name for r in requires} == set(pins(REPO / "serving" / "requirements.txt"))
    for requirement in requires:
        assert pins()[requirement.name] in requirement.specifier, requirement


def run(command: list, site: Path, cwd: Path) -> subprocess.CompletedProcess:
    """``command`` in ``cwd`` (outside the checkout) with ``site`` as the only path to ours."""
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_installed_clis_run_from_another_directory(wheels, exported_run, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    serving_site, full_site = tmp_path / "serving-site", tmp_path / "full-site"
    pip("install", "--target", serving_site, wheels["keras_rnn_serving"])
    pip("install", "--target", full_site, wheels["keras_rnn"])

    where = run(
        [sys.executable, "-c", "import serving; print(serving.__file__)"], serving_site, elsewhere
    )
    assert Path(where.stdout.strip()).is_relative_to(serving_site), where.stderr
    predict = serving_site / "bin" / "keras-rnn-predict"
    result = run([predict, exported_run("lstm"), "--window", "0.1,0.2"], serving_site, elsewhere)
    assert result.returncode == 0, result.stderr
    assert "one step ahead:" in result.stdout
    # The installed script with TensorFlow, Keras and the training side unimportable.
    blocker = (
        "import runpy, sys\n"
        f"for name in {BLOCKED_MODULES!r}:\n"
        "    sys.modules[name] = None\n"
        "sys.argv = sys.argv[1:]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    argv = [sys.executable, "-c", blocker, predict, exported_run("lstm"), "--window", "0.1,0.2"]
    blocked = run(argv, serving_site, elsewhere)
    assert blocked.returncode == 0, blocked.stderr
    assert blocked.stdout == result.stdout

    code = "import keras_rnn, export, serving; print(keras_rnn.__file__, export.__file__)"
    where = run([sys.executable, "-c", code], full_site, elsewhere)
    assert all(Path(path).is_relative_to(full_site) for path in where.stdout.split()), where
    for script, target in SCRIPTS.items():
        result = run([full_site / "bin" / script, "--help"], full_site, elsewhere)
        assert result.returncode == 0, result.stderr
        module = target.split(":")[0].removesuffix(".__main__")
        assert result.stdout.startswith(f"usage: python -m {module}"), result.stdout


def test_both_wheels_ship_the_tf_serving_dockerfile(wheels):
    for wheel in wheels.values():
        with zipfile.ZipFile(wheel) as archive:
            dockerfile = archive.read("serving/tfserving/Dockerfile").decode()
        assert dockerfile == (REPO / "serving" / "tfserving" / "Dockerfile").read_text()
