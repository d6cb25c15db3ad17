"""`structconv demo` (keras_structconv/cli/demo.py): the parser, a one-epoch run on 128 images,
and the zoo part against a hub folder holding a published model, or none."""

import keras
import numpy as np
import pytest

from keras_structconv import cli, datasets, demo, hub
from keras_structconv.cli import demo as demo_command


def test_parser_defaults_and_errors():
    parser = cli.build_parser()
    args = parser.parse_args(["demo"])
    assert args.command == "demo" and args.handler is demo_command.run
    assert (args.epochs, args.batch_size, args.seed) == (demo.DEMO_EPOCHS, demo.DEMO_BATCH_SIZE, 0)
    assert args.output_dir is None and args.limit is None and args.zoo
    assert args.min_accuracy == pytest.approx(0.35)
    args = parser.parse_args(["demo", "--epochs", "3", "--output-dir", "out", "--limit", "8"])
    assert (args.epochs, str(args.output_dir), args.limit) == (3, "out", 8)
    for bad in ([], ["nosuchcommand"], ["demo", "--epochs", "0"], ["demo", "--limit", "-1"]):
        with pytest.raises(SystemExit):
            parser.parse_args(bad)


def test_demo_end_to_end_and_reload_check_catches_changed_weights(tmp_path, capsys):
    argv = "demo --no-zoo --epochs 1 --limit 128 --batch-size 64 --min-accuracy 0 --output-dir"
    status = cli.main([*argv.split(), str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "Test accuracy on 128 embedded test images" in out and "Zoo" not in out
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


def tiny_zoo_model():
    """A small RGB 0-255 CIFAR-10 classifier standing in for a zoo model (random weights)."""
    keras.utils.set_random_seed(0)
    images = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 255.0)(images)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(images, keras.layers.Dense(10, activation="softmax")(x))


@pytest.fixture
def hub_folder(tmp_path, monkeypatch):
    """An empty hub folder set as KERAS_STRUCTCONV_HUB_URL, with a cache of its own."""
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "manifest.json").write_text('{"format_version": 1, "models": []}')
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_URL", dist.as_uri() + "/")
    monkeypatch.setenv("KERAS_STRUCTCONV_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("KERAS_STRUCTCONV_HUB_OFFLINE", raising=False)
    return dist


def test_zoo_part_says_in_one_line_that_no_model_is_published(hub_folder, capsys):
    assert demo_command.show_zoo() is True
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Zoo: no zoo models are published yet")


def test_zoo_part_loads_published_models_by_handle_and_checks_their_accuracy(
    hub_folder, tmp_path, capsys
):
    model = tiny_zoo_model()
    _, (x_test, y_test) = datasets.load_embedded_cifar10()
    accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    model.save(tmp_path / "tiny.keras")
    for name, reported in (("resnet20_cifar10", accuracy), ("ps_resnet20_cifar10", accuracy)):
        hub.publish(tmp_path / "tiny.keras", name=name, version=1, out_dir=hub_folder,
                    metrics={"embedded_test_top1": reported})
    hub.publish(tmp_path / "tiny.keras", name="unrelated_model", version=1, out_dir=hub_folder)
    assert [e["name"] for e in demo.zoo_models()] == ["resnet20_cifar10", "ps_resnet20_cifar10"]
    assert demo.zoo_accuracy("keras_structconv/resnet20_cifar10/1", x_test, y_test) == accuracy

    assert demo_command.show_zoo() is True
    out = capsys.readouterr().out
    assert "keras_structconv/resnet20_cifar10/1" in out and "baseline" in out
    assert "+0.0 points vs the baseline on these images" in out and out.count(": OK") == 2

    # A model whose metadata reports another accuracy fails the demo's check.
    hub.publish(tmp_path / "tiny.keras", name="tam_resnet20_cifar10", version=1,
                out_dir=hub_folder, metrics={"embedded_test_top1": accuracy + 0.05})
    assert demo_command.show_zoo() is False
    assert "MISMATCH" in capsys.readouterr().out


def test_zoo_comparison_uses_the_full_test_set_when_the_metadata_gives_it():
    line = demo_command.versus_baseline(0.848, {"top1": 0.8413}, 0.832, {"top1": 0.8445})
    assert line == "  full test set: 84.13% vs the baseline's 84.45% (-0.32 points)"
    # Without both full-test figures, the difference on the embedded images, labelled as such.
    line = demo_command.versus_baseline(0.848, {"top1": 0.8413}, 0.832, {})
    assert line == "  +1.6 points vs the baseline on these images"
