"""Writes the notebooks of colab/ from their sources in colab/_cells/.

    python colab/_build.py            # rewrite every notebook from its source
    python colab/_build.py --check    # exit 1 if a notebook differs from what its source gives
    python colab/_build.py --badges OWNER/NAME   # write the "Open in Colab" badges into README.md

Each source `colab/_cells/NAME.py` is a Python file in the "percent" format (as jupytext writes
it): `# %% [markdown]` starts a Markdown cell whose lines are comments (`# ` + Markdown, `#` for a
blank line) and `# %%` starts a code cell; text before the first marker is ignored. A line
`# %% [setup] EXTRAS` (e.g. `# %% [setup] tuning,viz`) stands for the setup cells every notebook
starts with ("## Setup" and the cell installing `keras_structconv[EXTRAS]` when it is missing),
written once in `colab/_cells/_setup.py`; each notebook gets its own copy. Cell ids derive from
the notebook name and the cell index, so an unchanged source gives byte-identical JSON. Notebooks
are written without outputs or execution counts (tests/test_notebooks.py checks both). Sources
whose name starts with `_` are not notebooks.
"""

import argparse
import json
import re
import string
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "_cells"
MARKDOWN = "# %% [markdown]"
CODE = "# %%"
SETUP_SOURCE = SOURCES / "_setup.py"
SETUP_LINE = re.compile(r"^# %% \[setup\] (?P<extras>\S+)[ \t]*$", re.MULTILINE)
# The module each extra (setup.py's extras_require) provides that a notebook imports: the setup
# cell installs the extras when one of these modules is missing.
EXTRA_MODULES = {"tuning": "keras_tuner", "viz": "matplotlib"}

# "Open in Colab" badges: Colab opens a notebook from a public GitHub repository, so the badges
# need its "owner/name"; they are written between these two lines of colab/README.md.
README = HERE / "README.md"
BADGES_START = "<!-- colab-badges:start -->"
BADGES_END = "<!-- colab-badges:end -->"
REPO_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")
COLAB_URL = "https://colab.research.google.com/github/{repo}/blob/main/colab/{name}.ipynb"
BADGE = "https://colab.research.google.com/assets/colab-badge.svg"

KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
LANGUAGE_INFO = {"name": "python"}


def notebook_sources():
    """The notebook sources `colab/_cells/NAME.py`, sorted (`_`-prefixed files are parts)."""
    return sorted(path for path in SOURCES.glob("*.py") if not path.name.startswith("_"))


def expand_setup(text):
    """`text` with each `# %% [setup] EXTRAS` line replaced by the shared setup cells."""
    return SETUP_LINE.sub(lambda match: setup_cells(match["extras"]), text)


def setup_cells(extras):
    """The cells of `_setup.py` (from its first cell marker on) for the extras "a,b"."""
    names = extras.split(",")
    unknown = [name for name in names if name not in EXTRA_MODULES]
    if unknown:
        raise ValueError(
            f"Unknown extras {unknown} in a `# %% [setup]` line; known: {sorted(EXTRA_MODULES)}. "
            f"Received: extras={extras!r}"
        )
    modules = ("keras_structconv", *(EXTRA_MODULES[name] for name in names))
    template = SETUP_SOURCE.read_text(encoding="utf-8")
    cells = template[template.index(MARKDOWN):]
    required_modules = "(" + ", ".join(f'"{module}"' for module in modules) + ")"
    return string.Template(cells).substitute(extras=extras, required_modules=required_modules)


def notebook_cells(text):
    """[(kind, source)] of a notebook source, its `# %% [setup]` line expanded."""
    return split_cells(expand_setup(text))


def split_cells(text):
    """[(kind, source)] from a cell source file (kind "markdown" or "code")."""
    cells, kind, lines = [], None, []
    for line in text.splitlines():
        stripped = line.rstrip()
        if stripped in (MARKDOWN, CODE):
            if kind is not None:
                cells.append((kind, "\n".join(lines).strip("\n")))
            kind, lines = ("markdown" if stripped == MARKDOWN else "code"), []
        elif kind == "markdown":
            lines.append(_uncomment(line))
        elif kind is not None:
            lines.append(line)
    if kind is not None:
        cells.append((kind, "\n".join(lines).strip("\n")))
    return [(kind, source) for kind, source in cells if source]


def _uncomment(line):
    """A Markdown line from its commented form ("# text" or "#")."""
    if line.rstrip() == "#":
        return ""
    if not line.startswith("# "):
        raise ValueError(
            "Markdown cells hold comment lines ('# ' + text, or '#' for a blank line). "
            f"Received: line={line!r}"
        )
    return line[2:]


def notebook_json(name, text):
    """The notebook (nbformat 4.5) as a JSON string, one cell per source cell, no outputs."""
    cells = []
    for index, (kind, source) in enumerate(notebook_cells(text)):
        cell = {
            "cell_type": kind,
            "id": f"{name.replace('_', '-')}-{index:02d}",
            "metadata": {},
            "source": source.splitlines(keepends=True),
        }
        if kind == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        cells.append(cell)
    notebook = {
        "cells": cells,
        "metadata": {
            "colab": {"provenance": []},
            "kernelspec": KERNELSPEC,
            "language_info": LANGUAGE_INFO,
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"


def notebook_title(text):
    """The first Markdown heading of a cell source file, without the leading #."""
    for kind, source in notebook_cells(text):
        if kind == "markdown" and source.startswith("#"):
            return source.splitlines()[0].lstrip("#").strip()
    return ""


def badge_lines(repo):
    """Markdown lines: one "Open in Colab" badge per notebook, with its title.

    `repo` is the public GitHub repository ("owner/name") whose `main` branch holds `colab/`.
    """
    if not isinstance(repo, str) or not REPO_PATTERN.match(repo) or repo.endswith((".", ".git")):
        raise ValueError(
            "`repo` must be a GitHub repository as owner/name (e.g. keras-team/keras). "
            f"Received: repo={repo!r}"
        )
    lines = []
    for source in notebook_sources():
        url = COLAB_URL.format(repo=repo, name=source.stem)
        title = notebook_title(source.read_text(encoding="utf-8")).replace("`", "")
        lines.append(f"- [![Open In Colab]({BADGE})]({url}) `{source.stem}`: {title}")
    return lines


def with_badges(readme_text, lines):
    """`readme_text` with the lines between the badge markers replaced by `lines`."""
    start, end = readme_text.find(BADGES_START), readme_text.find(BADGES_END)
    once = readme_text.count(BADGES_START) == readme_text.count(BADGES_END) == 1
    if start < 0 or end < start or not once:
        raise ValueError(
            f"The README needs one {BADGES_START!r} line followed by one {BADGES_END!r} line. "
            f"Received: start marker at {start}, end marker at {end}"
        )
    head = readme_text[: start + len(BADGES_START)]
    return head + "\n" + "\n".join(lines) + "\n" + readme_text[end:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    parser.add_argument(
        "--badges", metavar="OWNER/NAME",
        help="write the 'Open in Colab' badges of the public GitHub repository OWNER/NAME "
        "into colab/README.md (with --check: only compare)",
    )
    args = parser.parse_args(argv)
    if args.badges:
        current = README.read_text(encoding="utf-8")
        text = with_badges(current, badge_lines(args.badges))
        if args.check:
            print("badges " + ("up to date" if text == current else "out of date"))
            return 0 if text == current else 1
        README.write_text(text, encoding="utf-8")
        print(f"badges for {args.badges} written to {README.relative_to(HERE.parent)}")
        return 0
    stale = []
    for source in notebook_sources():
        target = HERE / f"{source.stem}.ipynb"
        text = notebook_json(source.stem, source.read_text(encoding="utf-8"))
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(target.name)
        if not args.check:
            target.write_text(text, encoding="utf-8")
    verb = "out of date" if args.check else "written"
    print(f"{len(stale)} notebook(s) {verb}: {', '.join(stale) or '-'}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
