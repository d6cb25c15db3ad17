"""What the subcommands share (keras_structconv/cli/_common.py), and every subcommand using it."""

import argparse
import importlib

import pytest

from keras_structconv import cli
from keras_structconv.cli._common import add_subcommand, positive_int


def test_add_subcommand_returns_its_parser_and_routes_to_the_handler():
    parser = argparse.ArgumentParser(prog="structconv")
    subparsers = parser.add_subparsers(dest="command", required=True)

    def run(args):
        return args.count

    command = add_subcommand(subparsers, "count", run, help="one line", description="the text")
    command.add_argument("--count", type=positive_int, default=1)
    args = parser.parse_args(["count", "--count", "3"])
    assert args.handler is run and args.handler(args) == 3
    assert command.description == "the text" and command.prog == "structconv count"
    for bad in ("0", "-2", "x"):
        with pytest.raises(SystemExit):
            parser.parse_args(["count", "--count", bad])


def test_every_subcommand_has_a_handler():
    parser = argparse.ArgumentParser(prog="structconv")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in cli.SUBCOMMANDS:
        importlib.import_module(f"keras_structconv.cli.{name}").register(subparsers)
    assert len(subparsers.choices) == len(cli.SUBCOMMANDS)
    assert {"demo", "make-sample", "quadtree-stats", "segment", "tune"} <= set(subparsers.choices)
    for name, command in subparsers.choices.items():
        if name != "hub":  # the hub's own subcommands carry its handlers
            assert callable(command.get_default("handler")), name
    for hub_command in ("list", "info x", "pull x", "serve .", "tflite x"):
        assert callable(parser.parse_args(["hub", *hub_command.split()]).handler), hub_command
