"""`structconv make-sample` (keras_structconv/cli/make_sample.py): the parser, and the command
writes what `make_sample.build_sample` draws."""

import numpy as np
import pytest

from keras_structconv import cli
from keras_structconv.cli import make_sample as make_sample_command
from keras_structconv.datasets import cifar10, make_sample
from tests.datasets.fake_archives import write_small_cifar


def test_parser_defaults_and_errors():
    parser = cli.build_parser()
    args = parser.parse_args(["make-sample"])
    assert args.handler is make_sample_command.run
    assert (args.data_dir, args.output, args.seed) == (None, cifar10.EMBEDDED_PATH, 0)
    assert (args.train_per_class, args.test_per_class) == (200, 50)
    for bad in (["--train-per-class", "0"], ["--test-per-class", "x"], ["--seed", "1.5"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["make-sample", *bad])


def test_command_writes_the_drawn_sample_and_reports_it(tmp_path, capsys):
    source = tmp_path / "cifar10"
    write_small_cifar(source)
    output = tmp_path / "sample.npz"
    argv = ["--data-dir", str(source), "--output", str(output), "--seed", "5",
            "--train-per-class", "2", "--test-per-class", "1"]
    assert cli.main(["make-sample", *argv]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {output} (") and out.endswith("MB; train 20, test 10 images)\n")
    expected = make_sample.build_sample(source, {"train": 2, "test": 1}, seed=5)
    with np.load(output) as written:
        assert sorted(written.files) == sorted(expected)
        for key, value in expected.items():
            np.testing.assert_array_equal(written[key], value)
