"""Benchmark cases: importing this package imports every module in it, which registers its cases.

Add a case by adding a module here with a `@benchmarks.runner.register("name")` function.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
