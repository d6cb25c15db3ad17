"""The Colab notebooks of colab/: committed clean, and each one runs top to bottom.

- Committed form (fast, always run): valid nbformat 4 JSON, no outputs and no execution counts,
  byte-identical to what `colab/_build.py` writes from `colab/_cells/NAME.py` (whose setup cells
  come from the one shared source `colab/_cells/_setup.py`), a first code cell that installs the
  package only when it is missing, and the small-mode switch.
- Execution (`pytest -m notebooks`): nbclient runs each notebook headless in small mode
  (`KERAS_STRUCTCONV_NOTEBOOK_SMALL=1`) in a kernel started from this interpreter (a kernel spec
  written to a temporary folder whose argv is `sys.executable -m ipykernel_launcher`), in a
  temporary working directory; any cell error fails the test with the cell's traceback.
  The kernel runs `tf.function`s eagerly (an IPython startup file): a small-mode notebook trains
  for a few steps, where tracing train and test steps costs more than it saves (measured, the six
  notebooks take 51 CPU-seconds less, a third of their time). The traced path of every layer
  and model is what their own tests check; exports and TFLite conversions still trace.
  Notebooks that read a dataset (06_quadtree: CamVid) get the data folder through
  `KERAS_STRUCTCONV_DATA` and skip (fail under CI=true) without it.
"""

import importlib.util
import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, dataset_root, require_dataset

NOTEBOOK_DIR = REPO / "colab"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
EXPECTED = (
    "01_quickstart", "02_backbones", "03_look_inside", "04_tuning", "05_hub", "06_quadtree"
)
# Datasets a notebook reads from the data folder (the others use data shipped in the package).
NOTEBOOK_DATASETS = {"06_quadtree": "camvid"}
# Zoo models a notebook loads through the hub, from the packaged manifest and zoo/dist/.
NOTEBOOK_ZOO_MODELS = {"05_hub": "resnet20_cifar10"}
PACKAGED_MANIFEST = REPO / "keras_structconv" / "hub" / "manifest.json"
SMALL_MODE_VARIABLE = "KERAS_STRUCTCONV_NOTEBOOK_SMALL"
# Per-cell limit: a hung kernel fails the test instead of blocking CI (a small-mode cell takes
# seconds, a few minutes on a heavily loaded machine).
CELL_TIMEOUT_SECONDS = 600
KERNEL_NAME = "keras-structconv-tests"


def _require_notebook_tools():
    """nbformat, nbclient and ipykernel (the `notebooks` extra): skip without them, with the
    reason, and fail under CI=true, where the notebooks must run."""
    missing = [
        name for name in ("nbformat", "nbclient", "ipykernel", "jupyter_client")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        reason = (
            f"notebook tools not installed: {', '.join(missing)} "
            "(pip install nbclient nbformat ipykernel)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and {reason}")
        pytest.skip(reason)


def _load_build_script():
    spec = importlib.util.spec_from_file_location("colab_build", NOTEBOOK_DIR / "_build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _code_cells(notebook):
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def _cells_with_outputs(notebook):
    """Indexes of the cells holding outputs, an execution count or attachments."""
    return [
        index
        for index, cell in enumerate(notebook["cells"])
        if cell.get("outputs") or cell.get("execution_count") is not None
        or cell.get("attachments")
    ]


def _ids(paths):
    return [path.stem for path in paths]


def test_expected_notebooks_present():
    assert set(EXPECTED) <= {path.stem for path in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_committed_without_outputs(path):
    _require_notebook_tools()
    import nbformat

    raw = json.loads(path.read_text(encoding="utf-8"))
    nbformat.validate(nbformat.from_dict(raw))
    assert raw["nbformat"] == 4
    dirty = _cells_with_outputs(raw)
    assert dirty == [], f"{path.name}: cells {dirty} carry outputs, execution counts or attachments"


def test_output_check_finds_executed_cells():
    build = _load_build_script()
    notebook = json.loads(build.notebook_json("t", "# %%\nx = 1\n# %%\ny = 2\n# %%\nz = 3\n"))
    assert _cells_with_outputs(notebook) == []
    notebook["cells"][0]["execution_count"] = 1
    notebook["cells"][2]["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "3"}]
    assert _cells_with_outputs(notebook) == [0, 2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_matches_its_source(path):
    build = _load_build_script()
    source = NOTEBOOK_DIR / "_cells" / f"{path.stem}.py"
    assert source.is_file(), f"{path.name} has no source {source.relative_to(REPO)}"
    expected = build.notebook_json(path.stem, source.read_text(encoding="utf-8"))
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path.name} differs from {source.relative_to(REPO)}: run `python colab/_build.py`"
    )


def test_notebook_sources_share_one_setup_source():
    build = _load_build_script()
    assert [path.stem for path in build.notebook_sources()] == _ids(NOTEBOOKS)
    for source in build.notebook_sources():
        text = source.read_text(encoding="utf-8")
        assert build.SETUP_LINE.search(text), f"{source.name} has no `# %% [setup]` line"
        assert "KERAS_STRUCTCONV_GIT_URL" not in text, f"{source.name} copies the setup cell"


def test_setup_line_expands_to_the_setup_cells_for_its_extras():
    build = _load_build_script()
    text = "# %% [markdown]\n# # Title\n# %% [setup] tuning,viz\n# %%\nx = 1\n"
    cells = build.notebook_cells(text)
    assert [kind for kind, _ in cells] == ["markdown", "markdown", "code", "code"]
    assert cells[1][1].startswith("## Setup\n") and "needs: `tuning,viz`." in cells[1][1]
    install = cells[2][1]
    assert 'REQUIRED_MODULES = ("keras_structconv", "keras_tuner", "matplotlib")' in install
    assert 'EXTRAS = "tuning,viz"' in install and "$" not in install
    assert cells[3] == ("code", "x = 1")
    with pytest.raises(ValueError, match="Received: extras='viz,gpu'"):
        build.notebook_cells("# %% [setup] viz,gpu\n")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_install_cell_and_small_switch(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    first, *rest = ["".join(cell["source"]) for cell in _code_cells(notebook)]
    # The install cell checks importability first, installs from a URL the user sets, and
    # touches nothing else (it runs on CI too, where it must do nothing).
    assert 'REQUIRED_MODULES = ("keras_structconv", ' in first
    assert "importlib.util.find_spec(name) is None" in first
    assert 'requirement = f"keras_structconv[{EXTRAS}] @ {KERAS_STRUCTCONV_GIT_URL}"' in first
    assert "import keras_structconv" not in first
    assert any(f'os.environ.get("{SMALL_MODE_VARIABLE}"' in cell for cell in rest)


def _install_cell(path, url):
    """The notebook's first code cell with `KERAS_STRUCTCONV_GIT_URL` set to `url`."""
    source = "".join(_code_cells(json.loads(path.read_text(encoding="utf-8")))[0]["source"])
    assigned = 'KERAS_STRUCTCONV_GIT_URL = ""'
    assert source.count(assigned) == 1
    return source.replace(assigned, f"KERAS_STRUCTCONV_GIT_URL = {url!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_install_cell_does_nothing_when_importable(path, tmp_path):
    # An unreachable URL: any pip call would fail, so a clean exit means nothing was installed.
    cell = _install_cell(path, "git+file:///nonexistent/keras_structconv.git")
    result = subprocess.run(
        [sys.executable, "-c", cell], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_install_cell_asks_for_the_url_when_missing(path, tmp_path):
    # `python -S`: no site-packages, so keras_structconv is not importable.
    result = subprocess.run(
        [sys.executable, "-S", "-c", _install_cell(path, "")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert "RuntimeError: Not installed: keras_structconv, " in result.stderr
    assert "Set KERAS_STRUCTCONV_GIT_URL above" in result.stderr


def test_badges_link_every_notebook_of_the_repository_and_keep_the_readme_around_them():
    build = _load_build_script()
    lines = build.badge_lines("acme/keras_structconv")
    assert len(lines) == len(NOTEBOOKS)
    for line, path in zip(lines, NOTEBOOKS, strict=True):
        url = (f"https://colab.research.google.com/github/acme/keras_structconv/blob/main/"
               f"colab/{path.stem}.ipynb")
        assert f"]({url})" in line and line.startswith("- [![Open In Colab]")
    readme = (NOTEBOOK_DIR / "README.md").read_text(encoding="utf-8")
    written = build.with_badges(readme, lines)
    start, end = build.BADGES_START, build.BADGES_END
    assert written.split(start)[0] == readme.split(start)[0]
    assert written.split(end)[1] == readme.split(end)[1]
    assert written.split(start)[1].split(end)[0] == "\n" + "\n".join(lines) + "\n"
    assert build.with_badges(written, lines) == written  # writing again changes nothing


@pytest.mark.parametrize("repo", ["keras_structconv", "OWNER/", "a/b/c", "-x/y", "a/b.git", None])
def test_badges_refuse_what_is_not_owner_slash_name(repo):
    build = _load_build_script()
    with pytest.raises(ValueError, match=re.escape(f"Received: repo={repo!r}")):
        build.badge_lines(repo)


def test_badges_need_both_markers_once():
    build = _load_build_script()
    for text in ("no markers", f"{build.BADGES_END}\n{build.BADGES_START}",
                 f"{build.BADGES_START}\n{build.BADGES_START}\n{build.BADGES_END}",
                 f"{build.BADGES_START}\n{build.BADGES_END}\n{build.BADGES_END}"):
        with pytest.raises(ValueError, match="Received: start marker at"):
            build.with_badges(text, ["- badge"])


def test_split_cells_reads_markers():
    build = _load_build_script()
    text = (
        "ignored\n# %% [markdown]\n# # Title\n#\n# text\n"
        "# %%\nx = 1\n# comment\n# %%\n\n# %%\ny\n"
    )
    assert build.split_cells(text) == [
        ("markdown", "# Title\n\ntext"),
        ("code", "x = 1\n# comment"),
        ("code", "y"),
    ]
    with pytest.raises(ValueError, match="Received: line='text'"):
        build.split_cells("# %% [markdown]\ntext\n")


# Run by the kernel before the notebook (IPython's startup folder): see the module docstring.
KERNEL_STARTUP = "import tensorflow as tf\n\ntf.config.run_functions_eagerly(True)\n"
# Appended to the executed copy: prints whether the startup file took effect.
EAGER_PROBE = (
    "import tensorflow as tf\nprint('functions run eagerly:', tf.config.functions_run_eagerly())"
)


def _functions_ran_eagerly(notebook):
    outputs = notebook.cells[-1].get("outputs", [])
    return any("functions run eagerly: True" in output.get("text", "") for output in outputs)


@pytest.fixture(scope="module")
def ipython_dir(tmp_path_factory):
    """An IPython folder whose profile runs KERNEL_STARTUP (and nothing of the user's)."""
    folder = tmp_path_factory.mktemp("ipython")
    startup = folder / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00_eager_functions.py").write_text(KERNEL_STARTUP, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def kernel_spec_dir(tmp_path_factory):
    """A kernels/ folder holding one spec that starts ipykernel with this interpreter."""
    kernels = tmp_path_factory.mktemp("jupyter") / "kernels"
    spec_dir = kernels / KERNEL_NAME
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "keras_structconv tests",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    return kernels


def _require_zoo_model(name):
    """Skips (like tests/zoo/test_cifar10_published.py) while the packaged manifest does not
    list zoo model `name`: the zoo's models are published as their training runs finish."""
    models = json.loads(PACKAGED_MANIFEST.read_text(encoding="utf-8"))["models"]
    if not any(entry["name"] == name for entry in models):
        pytest.skip(f"zoo model {name!r} is not published in {PACKAGED_MANIFEST.relative_to(REPO)} "
                    "yet (zoo/README.md)")


def _kernel_environment(name, tmp_path):
    env = {SMALL_MODE_VARIABLE: "1", "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONHASHSEED": "0"}
    if name in NOTEBOOK_ZOO_MODELS:
        _require_zoo_model(NOTEBOOK_ZOO_MODELS[name])
        # The packaged manifest and a fresh cache: what a clone of the repository sees.
        env["KERAS_STRUCTCONV_HUB_CACHE"] = str(tmp_path / "hub_cache")
    dataset = NOTEBOOK_DATASETS.get(name)
    if dataset is not None:
        env["KERAS_STRUCTCONV_DATA"] = str(require_dataset(dataset).parent)
    elif dataset_root() is not None:
        env["KERAS_STRUCTCONV_DATA"] = str(dataset_root())
    return env


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_small_mode(path, kernel_spec_dir, ipython_dir, tmp_path, monkeypatch):
    _require_notebook_tools()
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    monkeypatch.delenv("KERAS_STRUCTCONV_HUB_URL", raising=False)
    monkeypatch.setenv("IPYTHONDIR", str(ipython_dir))
    for key, value in _kernel_environment(path.stem, tmp_path).items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(EAGER_PROBE))
    manager = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_spec_dir)]),
    )
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=CELL_TIMEOUT_SECONDS,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    start = time.monotonic()
    try:
        client.execute()  # raises CellExecutionError (with the traceback) on the first failing cell
    finally:
        # A client given its kernel manager does not own the kernel and leaves it running: each
        # notebook's kernel would hold its memory (TensorFlow and the notebook's models) until
        # this pytest worker exits.
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    elapsed = time.monotonic() - start
    assert not manager.is_alive(), "the notebook's kernel is still running"
    errors = [
        output
        for cell in _code_cells(notebook)
        for output in cell["outputs"]
        if output["output_type"] == "error"
    ]
    assert errors == []
    executed = [cell["execution_count"] for cell in _code_cells(notebook)]
    assert None not in executed, f"cells not executed: {executed}"
    assert _functions_ran_eagerly(notebook), "the kernel's startup file did not run"
    print(f"{path.name}: {elapsed:.1f} s (load average {os.getloadavg()[0]:.1f})")
