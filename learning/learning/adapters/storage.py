"""Where uploaded files live: a small interface and a directory behind it.

Files are stored under names the server makes up, never the uploader's, so a name
cannot climb out of the directory or collide with another file.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import IO, Protocol

from learning.domain import MediaTooLarge

CHUNK = 1024 * 1024


class MediaStorage(Protocol):
    def save(self, stream: IO[bytes], max_bytes: int) -> tuple[str, int]: ...

    def path(self, key: str) -> Path: ...

    def delete(self, key: str) -> None: ...


def _valid_key(key: str) -> str:
    if len(key) != 32 or any(ch not in "0123456789abcdef" for ch in key):
        raise ValueError("not a storage key")
    return key


class DirectoryStorage:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def save(self, stream: IO[bytes], max_bytes: int) -> tuple[str, int]:
        """Copy the stream to a new file; (key, size). Too large → 413, nothing kept."""
        self.root.mkdir(parents=True, exist_ok=True)
        key = secrets.token_hex(16)
        target = self.root / key
        partial = target.with_suffix(".part")
        size = 0
        try:
            with partial.open("xb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLarge()
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            partial.rename(target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return key, size

    def path(self, key: str) -> Path:
        return self.root / _valid_key(key)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)
