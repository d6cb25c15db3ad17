"""`structconv aog-draw N`: draw the AND-OR grammar of an AOG building block."""

from __future__ import annotations

import argparse

from keras_structconv import aog
from keras_structconv.cli._common import add_subcommand, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(subparsers, "aog-draw", run, __doc__)
    parser.add_argument("num_primitives", type=positive_int, help="N, the number of primitives")
    parser.add_argument("--prune", type=int, choices=(0, 1, 2), default=None,
                        help="syntactic-symmetry pruning mode (1: left <= right, 2: left >= right)")
    parser.add_argument("--no-lateral", dest="lateral", action="store_false",
                        help="leave out the lateral connections")
    parser.add_argument("-o", "--output", default="aog.png", help="image file to write")


def run(args: argparse.Namespace) -> int:
    grammar = aog.build_grammar(args.num_primitives, prune=args.prune, lateral=args.lateral)
    path = grammar.draw(args.output)
    print(repr(grammar))
    print(f"wrote {path}")
    return 0
