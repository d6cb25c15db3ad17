"""`structconv quadtree-stats` (keras_structconv/cli/quadtree_stats.py)."""

import numpy as np
import pytest

from keras_structconv import cli
from keras_structconv.cli import quadtree_stats
from keras_structconv.quadtree import load_camvid_label_maps
from tests.quadtree.quadtree_reference import reference_original_figures, reference_table_row


def test_command_prints_reference_figures(camvid_dir, capsys):
    argv = ["--data-dir", str(camvid_dir), "--levels", "6", "--splits", "val", "--max-images", "3"]
    assert cli.main(["quadtree-stats", *argv]) == 0
    output = capsys.readouterr().out
    assert "padded with void to 384x480 (rows: 0 top, 24 bottom" in output
    padded_rows, original_rows = [line for line in output.splitlines() if line.startswith("val ")]
    padding = ((0, 24), (0, 0))
    padded = np.pad(load_camvid_label_maps("val", camvid_dir)[:3], ((0, 0), *padding),
                    constant_values=255)  # fmt: skip
    percent, ratio = reference_table_row(padded, 6)
    assert padded_rows.split() == ["val", "3", *(f"{p:.2f}" for p in percent), f"{ratio:.2f}%"]
    pixels, cells = reference_original_figures(padded, padding, 6)
    original = 3 * 360 * 480
    expected = [f"{100 * p / original:.2f}" for p in pixels[::-1]]
    assert original_rows.split() == ["val", "3", *expected, f"{100 * cells.sum() / original:.2f}%"]




def test_parser_defaults_and_errors():
    parser = cli.build_parser()
    args = parser.parse_args(["quadtree-stats", "--data", "camvid", "--levels", "6"])
    assert args.handler is quadtree_stats.run
    assert (args.levels, args.splits, args.padding, args.data_dir) == (
        6,
        ["train", "val", "test"],
        "end",
        None,
    )
    for bad in (["--data", "cityscapes"], ["--levels", "0"], ["--padding", "top"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["quadtree-stats", *bad])
