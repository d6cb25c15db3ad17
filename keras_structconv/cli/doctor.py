"""`structconv doctor`: print the versions, oneDNN, CPU flags, threads and XLA, with advice.

These runtime facts decide the operators' speed.
"""

from __future__ import annotations

import argparse
import json

from keras_structconv import runtime
from keras_structconv.cli._common import add_subcommand


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_subcommand(subparsers, "doctor", run, __doc__)
    parser.add_argument("--json", action="store_true", help="print the facts as JSON")


def run(args: argparse.Namespace) -> int:
    facts = runtime.runtime_facts()
    if args.json:
        print(json.dumps(facts, indent=2, sort_keys=True))
        return 0
    width = max(len(key) for key in facts)
    for key, value in facts.items():
        if key == "cpu_flags":
            value = " ".join(f"{flag}{'+' if on else '-'}" for flag, on in value.items())
        print(f"{key:<{width}}  {value}")
    lines = runtime.advice(facts)
    print("\nadvice:" if lines else "\nadvice: none, this runtime is set up for speed")
    for line in lines:
        print(f"- {line}")
    return 0
