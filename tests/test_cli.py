"""The `structconv` command line: the parser, and a one-epoch demo on a 128-image subset."""

import keras
import numpy as np
import pytest

from keras_structconv import cli, datasets, demo


def test_parser_defaults_and_errors():
    parser = cli.build_parser()
    args = parser.parse_args(["demo"])
    assert args.command == "demo" and args.handler is cli.run_demo
    assert (args.epochs, args.batch_size, args.seed) == (demo.DEMO_EPOCHS, demo.DEMO_BATCH_SIZE, 0)
    assert args.output_dir is None and args.limit is None
    assert args.min_accuracy == pytest.approx(0.35)
    args = parser.parse_args(["demo", "--epochs", "3", "--output-dir", "out", "--limit", "8"])
    assert (args.epochs, str(args.output_dir), args.limit) == (3, "out", 8)
    for bad in ([], ["nosuchcommand"], ["demo", "--epochs", "0"], ["demo", "--limit", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_demo_end_to_end_and_reload_check_catches_changed_weights(tmp_path, capsys):
    argv = "demo --epochs 1 --limit 128 --batch-size 64 --min-accuracy 0 --output-dir".split()
    status = cli.main([*argv, str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Test accuracy on 128 embedded test images" in out
    assert out.count(": OK") == 2 and "MISMATCH" not in out
    keras_path = tmp_path / "resnet20_demo.keras"
    export_path = tmp_path / "resnet20_demo_savedmodel"
    assert keras_path.is_file() and (export_path / "saved_model.pb").is_file()

    # The reload check compares real outputs: a .keras file with one changed weight must fail it
    # while the untouched SavedModel still matches.
    _, (x_test, _) = datasets.load_embedded_cifar10()
    images = demo.standardized(x_test[:64])
    model = keras.models.load_model(keras_path)
    expected = model.predict(images, verbose=0)
    classifier = model.layers[-1]
    kernel, bias = classifier.get_weights()
    classifier.set_weights([kernel, bias + np.arange(bias.size, dtype=bias.dtype)])
    changed_path = tmp_path / "changed.keras"
    model.save(changed_path)
    differences = demo.reload_differences(expected, images, changed_path, export_path)
    keras_diff, savedmodel_diff = differences.values()
    assert keras_diff > 100 * demo.RELOAD_TOLERANCE
    assert savedmodel_diff <= demo.RELOAD_TOLERANCE
    assert demo.demo_status(1.0, 0.35, differences) == 1


def test_aog_draw_writes_the_grammar_and_prints_its_counts(tmp_path, capsys):
    output = tmp_path / "g.png"
    assert cli.main(["aog-draw", "4", "--prune", "1", "-o", str(output)]) == 0
    out = capsys.readouterr().out
    # SPEC: pruned N=4 has 8 terminal / 5 AND / 8 OR nodes and 23 child edges.
    assert "8 terminal / 5 and / 8 or nodes, 23 child edges" in out
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
