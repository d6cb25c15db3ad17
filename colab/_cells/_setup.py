# The setup cells every notebook starts with, written once. A notebook source asks for them with
# the line `# %% [setup] EXTRAS` (e.g. `# %% [setup] tuning,viz`), which `colab/_build.py`
# replaces with the cells below, `$extras` set to EXTRAS and `$required_modules` to the modules
# those extras provide (plus keras_structconv). The generated notebook therefore holds its own
# copy and stays self-contained. This header, before the first cell marker, is not copied.
#
# %% [markdown]
# ## Setup
#
# The first cell installs `keras_structconv` when it is not importable (on Colab), with the
# extras this notebook needs: `$extras`. **Set `KERAS_STRUCTCONV_GIT_URL`** to the package's git
# repository first. It does nothing when everything is already installed (e.g. in the
# repository's `.venv`). If pip upgrades the TensorFlow or Keras that Colab ships, restart the
# runtime once after this cell.
#
# %%
import importlib.util
import subprocess
import sys

# Where to install keras_structconv from when it is missing (it is not on PyPI): set this to the
# package's git repository, e.g. "git+https://github.com/OWNER/REPO.git".
KERAS_STRUCTCONV_GIT_URL = ""
# What this notebook imports, and the package extras that provide it.
REQUIRED_MODULES = $required_modules
EXTRAS = "$extras"

missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
if missing:
    if not KERAS_STRUCTCONV_GIT_URL:
        raise RuntimeError(
            f"Not installed: {', '.join(missing)}. Set KERAS_STRUCTCONV_GIT_URL above to "
            "keras_structconv's git repository (e.g. git+https://github.com/OWNER/REPO.git) "
            "and run this cell again."
        )
    requirement = f"keras_structconv[{EXTRAS}] @ {KERAS_STRUCTCONV_GIT_URL}"
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", requirement])
