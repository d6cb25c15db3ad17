"""Loading the zoo's scripts (zoo/<recipe>/<name>.py) as modules, and the tiny CIFAR-10 run."""

import importlib.util

from tests.conftest import REPO

ZOO = REPO / "zoo"
# 64 embedded images in batches of 32: 2 steps an epoch; 2 epochs; 100 test images.
TINY_RUN = ["--model", "resnet20", "--source", "embedded", "--train-subset", "64",
            "--test-subset", "100", "--epochs", "2", "--batch-size", "32"]
SESSION = ["--nice", "0", "--verbose", "0"]


def load_script(recipe, name):
    path = ZOO / recipe / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"zoo_{recipe}_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
