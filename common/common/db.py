"""SQLAlchemy engine, sessions and transactions for the SQL services.

Repositories own their transactions through :meth:`Database.transaction`; the
service layer never sees a session. Works on MySQL/MariaDB (production, tests)
and SQLite (the local run on embedded defaults).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from common.errors import ServiceUnavailable


class Base(DeclarativeBase):
    """Declarative base; each service keeps its own metadata by subclassing."""


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
    )


def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # The driver would open transactions itself, lazily, at the first write: reads
    # before it (a seat count, a status check) would run outside any transaction.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # SQLite ignores SELECT ... FOR UPDATE; taking the write lock at BEGIN is what
    # serialises check-then-write transactions (capacity, mark-paid, outbox claims)
    # between the local run's workers and threads.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.engine = make_engine(url, pool_size=pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed on success, rolled back on any error.

        A lost or refused database connection becomes a 503, never a 500 with
        driver text.
        """
        try:
            with self._sessions() as session, session.begin():
                yield session
        except OperationalError as exc:
            if exc.connection_invalidated or _is_connection_error(exc):
                raise ServiceUnavailable(
                    "The database is unavailable.", code="database_unavailable"
                ) from exc
            raise

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()


_CONNECTION_ERRNOS = {2002, 2003, 2006, 2013, 2055}


def _is_connection_error(exc: DBAPIError) -> bool:
    args: tuple[object, ...] = getattr(exc.orig, "args", ())
    return bool(args) and args[0] in _CONNECTION_ERRNOS
