#!/usr/bin/env bash
# Build the sdist and the wheel (the wheel from the sdist, as `python -m build` does), install the
# wheel into a fresh venv outside the source tree, and run tools/wheel_smoke_check.py there.
# The venv gets `tensorflow` first, as a user who already has TensorFlow: installing the wheel
# must then install no second TensorFlow distribution.
#
# Usage: tools/wheel_smoke.sh SMOKE_PYTHON BUILD_PYTHON
#   SMOKE_PYTHON: interpreter of the fresh venv (CI: the newest supported Python).
#   BUILD_PYTHON: an interpreter with `build` installed (the dev venv's).
set -euo pipefail

SMOKE_PYTHON="${1:?usage: tools/wheel_smoke.sh SMOKE_PYTHON BUILD_PYTHON}"
BUILD_PYTHON="${2:?usage: tools/wheel_smoke.sh SMOKE_PYTHON BUILD_PYTHON}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CONSTRAINTS="$REPO/constraints.txt"

if ! "$SMOKE_PYTHON" -c 'import sys, venv' >/dev/null 2>&1; then
    echo "wheel-smoke: interpreter '$SMOKE_PYTHON' not found or not working;" \
        "run 'make wheel-smoke SMOKE_PYTHON=/path/to/python3.13'" >&2
    exit 1
fi
echo "wheel-smoke: $("$SMOKE_PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ksc-wheel-smoke.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

"$BUILD_PYTHON" -m build --outdir "$WORK/dist" "$REPO" >"$WORK/build.log" 2>&1 \
    || { cat "$WORK/build.log"; echo "wheel-smoke: python -m build failed" >&2; exit 1; }
WHEEL="$(ls "$WORK"/dist/keras_structconv-*.whl)"
echo "wheel-smoke: built $(cd "$WORK/dist" && ls)"

"$SMOKE_PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install --quiet --upgrade pip
# A user's TensorFlow, installed before our wheel.
"$VPY" -m pip install --quiet --no-compile -c "$CONSTRAINTS" tensorflow  # compile on import
"$VPY" -m pip install --quiet --no-compile -c "$CONSTRAINTS" --report "$WORK/report.json" "$WHEEL"

cd "$WORK"  # outside the source tree: the package must come from the venv
"$VPY" - "$WORK/report.json" <<'PY'
import importlib.metadata
import json
import sys

installed = [item["metadata"]["name"] for item in json.load(open(sys.argv[1]))["install"]]
tensorflows = {
    dist.metadata["Name"]
    for dist in importlib.metadata.distributions()
    if dist.metadata["Name"].lower().replace("_", "-").startswith(("tensorflow", "tf-nightly"))
    and (dist.read_text("top_level.txt") or "").split() == ["tensorflow"]
}
# Distributions that install the `tensorflow` package itself (not tensorflow-datasets & co).
TENSORFLOW_BUILDS = {"tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tensorflow-intel",
                     "tensorflow-macos", "tf-nightly", "tf-nightly-cpu"}
second = [name for name in installed if name.lower().replace("_", "-") in TENSORFLOW_BUILDS]
if second or len(tensorflows) != 1:
    sys.exit(f"wheel-smoke: the wheel installed {second}; TensorFlow distributions: {tensorflows}")
print(f"wheel-smoke: the wheel installed {len(installed)} packages, no second TensorFlow "
      f"(present: {sorted(tensorflows)})")
PY
env -u KERAS_STRUCTCONV_DATA "$VPY" "$REPO/tools/wheel_smoke_check.py"
