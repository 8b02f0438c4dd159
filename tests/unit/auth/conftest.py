"""Fixtures of the spool tests: a spool folder and an opener that closes what it opened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.auth.spool_testing import Opener


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def spools(folder: Path) -> Iterator[Opener]:
    opener = Opener(folder)
    yield opener
    opener.close_all()
