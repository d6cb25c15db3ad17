"""`structconv models` (keras_structconv/cli/models.py)."""

from keras_structconv import cli, models


def test_lists_the_matching_builders(capsys):
    assert cli.main(["models", "resnet*"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == models.list_models("resnet*")
    assert {"resnet20", "resnet50", "resnet101"} <= set(names) and "resnext29_8x64d" not in names


def test_no_match_is_an_error(capsys):
    assert cli.main(["models", "nothing_like_this*"]) == 1
    assert "no registered model matches" in capsys.readouterr().out
