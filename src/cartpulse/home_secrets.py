"""Secrets kept in the home's `state/` folder: created once, readable only by the owner."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def home_secret_file(path: Path, nbytes: int = 32) -> tuple[str, bool]:
    """The secret in `path`, created (mode 0600) if missing; and whether it was just created."""
    created = False
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_urlsafe(nbytes))
            created = True
    return path.read_text().strip(), created
