"""Shared fixtures: django-q2 runs tasks inline in unit tests; vaults are built in tmp folders."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def q_sync(monkeypatch):
    """Run enqueued tasks in-process (the integration tests start a real qcluster instead)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def make_vault(tmp_path):
    """Write {relative path: text or bytes} into a fresh vault folder and return its root."""

    def build(files: dict[str, str | bytes], root: Path | None = None) -> Path:
        root = root or tmp_path / "vault"
        root.mkdir(parents=True, exist_ok=True)
        for rel, content in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                content = content.encode("utf-8")
            path.write_bytes(content)
        return root

    return build
