"""Build the API reference of keras_structconv (a static pdoc site) from the docstrings.

    python tools/build_docs.py --output site

The build fails (exit status 1, each problem listed) when pdoc warns (a submodule that does not
import, an `__all__` entry that does not resolve, a docstring or annotation it cannot parse) or
when a docstring names `keras_structconv.something` in backticks that pdoc cannot link to a
rendered object (a renamed function, a private module, a typo).
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import warnings
from pathlib import Path

PACKAGE = "keras_structconv"
REPO = Path(__file__).resolve().parents[1]
# pdoc turns a resolved identifier into a link inside the <code> element; one left as plain code
# is a reference that points at nothing rendered.
UNRESOLVED_REFERENCE = re.compile(r"<code>(keras_structconv(?:\.\w+)+)(?:\(\))?</code>")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("site"), help="site folder")
    return parser.parse_args(argv)


def module_specs() -> list[str]:
    """Modules to give pdoc so that every public module (no `_` in its path) gets a page.

    pdoc follows a package's `__all__`, which lists the API rather than every submodule; naming
    the others too documents `keras_structconv.training`, `.viz`, `.export`, ... Each module is
    named once (pdoc warns about a module reached twice).
    """
    import pkgutil

    import pdoc.extract

    import keras_structconv

    public = [PACKAGE] + [
        module.name
        for module in pkgutil.walk_packages(keras_structconv.__path__, prefix=f"{PACKAGE}.")
        if not any(part.startswith("_") for part in module.name.split("."))
    ]
    specs, covered = [], set()
    for name in public:
        if name not in covered:
            specs.append(name)
            covered.update(pdoc.extract.walk_specs([name]))
    return specs


def render(output: Path) -> list[str]:
    """Writes the site into `output`; returns pdoc's warnings (and our own package's)."""
    import pdoc
    import pdoc.render

    sys.path.insert(0, str(REPO))  # document this source tree, whatever else is installed
    import keras_structconv

    pdoc.render.configure(
        docformat="google",
        footer_text=f"{PACKAGE} {keras_structconv.__version__}",
        show_source=True,
        search=True,
    )
    pdoc_folder = str(Path(pdoc.__file__).parent)
    package_folder = str(Path(keras_structconv.__file__).parent)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc(*module_specs(), output_directory=output)
    return [
        f"{Path(w.filename).name}:{w.lineno}: {w.category.__name__}: {w.message}"
        for w in caught
        if w.filename.startswith((pdoc_folder, package_folder))
    ]


def unresolved_references(output: Path) -> list[str]:
    """`page: name` for each `keras_structconv.*` reference left unlinked in the site."""
    problems = []
    for page in sorted(output.rglob("*.html")):
        names = sorted(set(UNRESOLVED_REFERENCE.findall(page.read_text(encoding="utf-8"))))
        problems += [f"{page.relative_to(output)}: {html.unescape(name)}" for name in names]
    return problems


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problems = render(args.output)
    problems += [f"unresolved reference {item}" for item in unresolved_references(args.output)]
    pages = len(list(args.output.rglob("*.html")))
    if problems:
        print(f"API reference: {len(problems)} problem(s):", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"API reference: {pages} pages in {args.output}/ (open {args.output}/index.html)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
