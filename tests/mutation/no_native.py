"""pytest plugin for the mutation run: hide the C extension so records take normalize.py.

``services/ingest/native.py`` has no switch for this: it uses the extension whenever it
imports. With the extension present most records never reach the Python reference path,
so a mutant there would survive for want of a test that runs it. Loaded with
``-p tests.mutation.no_native`` (see ``[tool.mutmut]`` in pyproject.toml).

It also lifts hypothesis's per-example deadline: a mutant's run shares the machine with
the others, and a slow example is not a killed mutant.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import settings

EXTENSION = "services.ingest._native"


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests() -> None:
    # A None entry makes `from services.ingest import _native` raise ImportError,
    # which is how a checkout without a compiler behaves.
    loaded = sys.modules.get(EXTENSION, None)
    if loaded is not None:
        raise pytest.UsageError(f"{EXTENSION} was imported before it could be hidden")
    sys.modules[EXTENSION] = None  # type: ignore[assignment]
    settings.register_profile("mutation", deadline=None)
    settings.load_profile("mutation")
