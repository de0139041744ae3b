"""The example services the scenarios run, found in an installed wheel or in a checkout.

Each incident's service lives once, where a reader finds it and can run it:
``examples/<incident>/service.py``. A scenario's guarded arm runs that very file, so what the
scenario proves is exactly the code the example shows. There is no second copy of it:

- in a checkout, :func:`example_file` is the file under ``examples/``;
- in a wheel, setuptools ships the same file as ``chaos/_examples/<incident>/service.py``
  (``pyproject.toml`` maps the folder with ``package-dir`` and names the file in
  ``py-modules``; one entry per example), found here with :mod:`importlib.resources`.

So ``pip install 'resilient-chaos[chaos]'`` then ``chaos run`` works anywhere. Package data
through a setuptools mapping was chosen over a symlink (not portable, and a second path to
keep right) and over a copy under ``chaos/`` (two sources that drift apart).

The installed copy is preferred, so an installed harness runs what it was built with.
:func:`load_example` loads the file as a private module (``_chaos_example_<incident>``), once.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

__all__ = ["example_file", "load_example"]

_CHECKOUT = Path(__file__).resolve().parents[2] / "examples"
"""``examples/`` of the checkout this module runs from (absent in a wheel)."""


def example_file(incident: str) -> Path:
    """The service file of ``examples/<incident>/``: the installed one when there is one, else
    the checkout's (which may be missing too: :func:`load_example` then says so)."""
    installed = resources.files("chaos") / "_examples" / _package_name(incident) / "service.py"
    if isinstance(installed, Path) and installed.is_file():
        return installed
    return _CHECKOUT / incident / "service.py"


@functools.cache
def load_example(incident: str) -> ModuleType:
    """The example service of ``examples/<incident>/``, loaded once as a module.

    Raises :class:`FileNotFoundError` when it is neither installed nor in a checkout.
    """
    path = example_file(incident)
    if not path.is_file():
        raise FileNotFoundError(
            f"the example service of {incident!r} is not installed, and {path} does not "
            "exist: reinstall resilient-chaos, or run from a checkout of the repository"
        )
    name = f"_chaos_example_{_package_name(incident)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _package_name(incident: str) -> str:
    return incident.replace("-", "_")
