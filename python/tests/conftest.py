"""Shared fixtures: real vault files in pytest's temporary directories, cheap KDF parameters."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

import nanu

REPO = Path(__file__).resolve().parents[2]
"""The repository root (python/tests/ is two levels below it)."""

SHARED_DATA = REPO.parent / "shared" / "data"
"""The shared real data beside the checkout (as in CI: a clone with shared/ beside it)."""

T0 = datetime(2025, 1, 1, tzinfo=timezone.utc)


def utc(text: str) -> datetime:
    """An aware datetime of RFC 3339 text with a `Z` or offset, any fraction length."""
    match = re.fullmatch(r"(.*T\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", text)
    assert match, f"not RFC 3339: {text}"
    base, fraction, zone = match.groups()
    micros = (fraction or "").ljust(6, "0")[:6]
    zone = "+00:00" if zone == "Z" else zone
    return datetime.fromisoformat(f"{base}.{micros}{zone}").astimezone(timezone.utc)


def new_vault(path: Path, **options: object) -> nanu.Vault:
    options.setdefault("passphrase", "test passphrase")
    options.setdefault("kdf", nanu.KdfParams.INSECURE_FOR_TESTS)
    return nanu.Vault.create(path, **options)  # type: ignore[arg-type]


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / "test.vault"


@pytest.fixture
def vault(vault_path: Path) -> Iterator[nanu.Vault]:
    v = new_vault(vault_path)
    try:
        yield v
    finally:
        v.close()
