"""Packaging: the single-sourced version, constraints.txt against setup.py's ranges, a core
import without the optional extras, and the API reference build (tools/build_docs.py).

The wheel itself is checked by `make wheel-smoke` (tools/wheel_smoke.sh), which `.ci/run` calls:
it installs the wheel into a fresh venv outside the tree, which a test here cannot do cheaply.
"""

import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement

import keras_structconv
from tests.conftest import REPO

# The optional dependencies of the extras; `import keras_structconv` must need none of them.
OPTIONAL_MODULES = (
    "keras_tuner",
    "tensorboard",
    "tf2onnx",
    "onnx",
    "onnxruntime",
    "tensorflow_datasets",
    "matplotlib",
    "PIL",
    "nbclient",
    "nbformat",
    "ipykernel",
    "pdoc",
    "pytest",
    "hypothesis",
)
# Python versions whose pins constraints.txt must cover (the 3.10 pins carry markers).
CI_PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def setup_requirements():
    """setup.py's requirements as `Requirement`s, `extra == "<name>"` markers for the extras."""
    metadata = importlib.metadata.metadata("keras_structconv")
    return [Requirement(text) for text in metadata.get_all("Requires-Dist")]


def constraints_for(python_version):
    """{name: version} of constraints.txt's pins whose markers hold on `python_version`."""
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement = Requirement(line)
        environment = {"python_version": python_version, "python_full_version": python_version}
        if requirement.marker is None or requirement.marker.evaluate(environment):
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"constraints.txt pins exactly: {line}"
            name = canonical(requirement.name)
            assert name not in pins, f"{name} pinned twice for Python {python_version}"
            pins[name] = specifier.version
    return pins


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def run_python(arguments, *, cwd, timeout, **environment):
    """Runs this interpreter with `arguments` (TensorFlow's logs silenced, `environment` added);
    asserts that it succeeds and returns the completed process."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **environment)
    result = subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_version_is_single_sourced():
    text = (REPO / "keras_structconv" / "_version.py").read_text(encoding="utf-8")
    (declared,) = re.findall(r'^__version__ = "([^"]+)"$', text, flags=re.MULTILINE)
    assert keras_structconv.__version__ == declared
    assert importlib.metadata.version("keras_structconv") == declared
    changelog = (REPO / "CHANGELOG.md").read_text(encoding="utf-8")
    assert f"## [{declared}]" in changelog


def test_package_data_is_declared():
    package = REPO / "keras_structconv"
    assert (package / "py.typed").is_file()
    assert (package / "datasets" / "data" / "cifar10_sample.npz").is_file()
    manifest = (REPO / "MANIFEST.in").read_text(encoding="utf-8")
    assert "keras_structconv/py.typed" in manifest


def test_depends_on_tensorflow_not_a_build_variant():
    names = {canonical(r.name) for r in setup_requirements() if r.marker is None}
    assert {"tensorflow", "keras"} <= names
    assert not names & {"tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel", "tf-nightly"}


@pytest.mark.parametrize("python_version", CI_PYTHONS)
def test_constraints_pin_every_requirement_within_its_range(python_version):
    pins = constraints_for(python_version)
    for requirement in setup_requirements():
        # Every extra goes into [dev], which is what CI installs.
        marker = requirement.marker or Marker('extra == "dev"')
        if not any(marker.evaluate({"extra": extra}) for extra in ("", "dev")):
            continue
        name = canonical(requirement.name)
        assert name in pins, f"{name} is not pinned in constraints.txt for Python {python_version}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]} outside setup.py's {requirement}"
        )


def test_extras_are_declared():
    extras = set(importlib.metadata.metadata("keras_structconv").get_all("Provides-Extra"))
    assert {"tuning", "hub", "export", "notebooks", "tfds", "viz", "docs", "dev"} <= extras


def test_core_import_and_cli_need_no_optional_dependency(tmp_path):
    """`import keras_structconv` and `structconv --help` with every optional module unimportable."""
    script = textwrap.dedent(
        f"""
        import importlib.abc
        import sys

        BLOCKED = {OPTIONAL_MODULES!r}

        class BlockOptional(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ImportError(f"optional dependency {{name}} imported")
                return None

        sys.meta_path.insert(0, BlockOptional())
        import keras_structconv
        from keras_structconv.cli import main

        try:
            main(["--help"])
        except SystemExit as exit:
            assert exit.code == 0, exit.code
        loaded = sorted(name for name in sys.modules if name.split(".")[0] in BLOCKED)
        assert not loaded, loaded
        print("core import ok")
        """
    )
    result = run_python(["-c", script], cwd=tmp_path, timeout=600, PYTHONPATH=str(REPO))
    assert "usage: structconv" in result.stdout
    assert result.stdout.rstrip().endswith("core import ok")


def test_api_reference_builds_without_warnings_or_broken_references(tmp_path):
    site = tmp_path / "site"
    build_docs = REPO / "tools" / "build_docs.py"
    run_python([str(build_docs), "--output", str(site)], cwd=REPO, timeout=900)
    for page in ("index.html", "keras_structconv.html", "keras_structconv/layers.html"):
        assert (site / page).is_file(), page
    layers_page = (site / "keras_structconv" / "layers.html").read_text(encoding="utf-8")
    assert 'id="PSConv2D"' in layers_page


def test_unresolved_reference_fails_the_docs_build(tmp_path):
    """The reference check itself: a page naming a missing object is reported."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_docs
    finally:
        sys.path.remove(str(REPO / "tools"))
    (tmp_path / "page.html").write_text(
        '<code><a href="x.html">keras_structconv.convert</a></code>'
        "<code>keras_structconv.layers.NoSuchLayer</code>",
        encoding="utf-8",
    )
    assert build_docs.unresolved_references(tmp_path) == [
        "page.html: keras_structconv.layers.NoSuchLayer"
    ]
