"""The MongoDB client: a real server, or mongomock as the in-process stand-in."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import mongomock
import pymongo
from pymongo.database import Database

MOCK_URLS = ("", "mongomock://")

# mongomock runs a filter-then-write as two steps; real MongoDB runs it atomically.
# Serialising the stand-in's conditional writes keeps the same guarantees in-process.
_MOCK_LOCK = threading.RLock()


def make_mongo_client(url: str) -> Any:
    if url.strip() in MOCK_URLS:
        return mongomock.MongoClient()
    return pymongo.MongoClient(url, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000)


def make_database(client: Any, name: str) -> Database[Any]:
    return client[name]


def is_mock(database: Any) -> bool:
    return isinstance(database, mongomock.Database)


@contextlib.contextmanager
def atomic(database: Any) -> Iterator[None]:
    """A conditional write that must not interleave (a no-op on real MongoDB)."""
    if is_mock(database):
        with _MOCK_LOCK:
            yield
    else:
        yield
