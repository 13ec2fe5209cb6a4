"""The Python quick starts of python/README.md and of the project README run as written."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from conftest import REPO

READMES = [REPO / "python" / "README.md", REPO / "README.md"]


@pytest.mark.parametrize("README", READMES, ids=["python/README.md", "README.md"])
def test_the_quick_start_runs(README: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "no python block in the README"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "Minted(key_id='key_" in out and "secret='nanu_live_…')" in out
    assert "\n6000\n" in out
    assert "UsageRow(" in out
    assert os.path.exists(tmp_path / "keys.vault")
