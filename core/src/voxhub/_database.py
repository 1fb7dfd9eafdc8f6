"""The job store's database interface: what the store's SQL runs on, whichever backend.

Two backends implement :class:`Database`: SQLite (:mod:`voxhub._sqlite`, the embedded
default, a file) and PostgreSQL (:mod:`voxhub._postgres`, a server shared by several
machines, chosen with a ``postgresql://`` URL). The store writes one SQL text for both:
``?`` placeholders, rows read by name or by position, ``RETURNING`` instead of
``lastrowid``, ``ON CONFLICT`` upserts, and a ``rowid`` column to order by (SQLite's own;
an identity column in PostgreSQL). The few differences go through :class:`Database`
attributes (``for_update``) and methods (``lock_keys``, ``insert_events``,
``wait_for_events``).

A PostgreSQL URL carries a password: :class:`PostgresUrl` registers it as a secret and
prints, formats and reprs itself masked, so a store's location can be shown anywhere.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, overload
from urllib.parse import unquote, urlsplit

from .errors import InvalidInputError
from .redact import register_secret

if TYPE_CHECKING:
    from ._records import Event
    from ._writer import WriteStats
    from .clock import Clock

__all__ = [
    "Connection",
    "Cursor",
    "Database",
    "PostgresUrl",
    "Row",
    "StoreTarget",
    "is_postgres_url",
    "open_database",
    "store_target",
]

T = TypeVar("T")


class Row(Protocol):
    """A result row: read by column name or by position, unpacked, sliced."""

    @overload
    def __getitem__(self, key: int | str, /) -> Any: ...
    @overload
    def __getitem__(self, key: slice, /) -> tuple[Any, ...]: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...


class Cursor(Protocol):
    """What a statement returns: its rows, and how many rows it changed."""

    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """The part of :class:`sqlite3.Connection` the store uses (PostgreSQL adapts to it)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...
    def executemany(self, sql: str, parameters: Iterable[Any], /) -> Cursor: ...


class PostgresUrl:
    """A ``postgresql://`` store URL whose password never shows.

    ``str()``, ``format()`` and ``repr()`` give the URL with the password as ``***``;
    :meth:`conninfo` gives the real one, for connecting only. Creating one registers the
    password with :func:`voxhub.redact.register_secret`, so a driver message that quotes
    it is masked too.
    """

    __slots__ = ("_bare", "_masked", "_url", "database", "host", "port", "user")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise InvalidInputError(
                f"store: a PostgreSQL URL starts with postgresql://, got {parts.scheme!r}",
                field="store",
            )
        try:
            port = parts.port or 5432
        except ValueError:
            message = "store: the URL's port is not a number"
            raise InvalidInputError(message, field="store") from None
        password = parts.password
        self._url = url
        netloc = bare = parts.netloc
        if password is not None:
            register_secret(password)
            if unquote(password) != password:
                register_secret(unquote(password))
            userinfo, _, hostinfo = netloc.rpartition("@")
            netloc = f"{userinfo.partition(':')[0]}:***@{hostinfo}"
            bare = f"{userinfo.partition(':')[0]}@{hostinfo}"
        self._masked = parts._replace(netloc=netloc).geturl()
        self._bare = parts._replace(netloc=bare).geturl()
        self.user = unquote(parts.username or "")
        self.host = parts.hostname or "localhost"
        self.port = port
        self.database = unquote(parts.path.lstrip("/")) or self.user

    @property
    def has_password(self) -> bool:
        """Whether the URL carries a password."""
        return self._bare != self._masked

    def without_password(self) -> str:
        """The URL with no password at all: it connects when the password comes from
        ``PGPASSWORD`` or ``~/.pgpass`` (libpq reads both), so it can be printed as part
        of a command to run."""
        return self._bare

    def conninfo(self) -> str:
        """The URL itself, password included: pass it to the driver, never print it."""
        return self._url

    @property
    def state_dir(self) -> Path:
        """This machine's folder for the store: ``$XDG_DATA_HOME/voxhub/postgresql/HOST-PORT-DB``
        (``~/.local/share`` without the variable). Plugins keep their shared state here
        (``ProviderContext.state_dir``), and the store's key unless told otherwise."""
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        name = re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.host}-{self.port}-{self.database}")
        return Path(base) / "voxhub" / "postgresql" / name

    def __str__(self) -> str:
        return self._masked

    def __format__(self, spec: str) -> str:
        return format(self._masked, spec)

    def __repr__(self) -> str:
        return f"PostgresUrl({self._masked!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PostgresUrl) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


#: Where a job store lives: a SQLite file, or a PostgreSQL database.
StoreTarget = Path | PostgresUrl


def is_postgres_url(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL store (``postgresql://`` or ``postgres://``)."""
    return value.startswith(("postgresql://", "postgres://"))


def store_target(value: str | Path | PostgresUrl) -> StoreTarget:
    """A store location as given (``--store``, ``$VOXHUB_STORE``, the config): a URL or a path."""
    if isinstance(value, PostgresUrl | Path):
        return value
    if is_postgres_url(value):
        return PostgresUrl(value)
    return Path(value).expanduser()


# Built from a constant column list only; every value is bound.
INSERT_EVENTS = [
    "INSERT INTO events (job_id, at, type, data) VALUES "  # noqa: S608
    + ", ".join(["(?, ?, ?, ?)"] * count)
    for count in range(5)
]
_RETURNING_SEQ = [sql + " RETURNING seq" for sql in INSERT_EVENTS]


class Database(abc.ABC):
    """Connections to one job store database: reads, write transactions, the schema."""

    #: ``"sqlite"`` or ``"postgresql"``.
    dialect: str
    #: Appended to a ``SELECT`` inside a write whose answer decides the write: PostgreSQL
    #: locks the rows read (another transaction may write them meanwhile); SQLite's write
    #: transactions already exclude each other.
    for_update: str = ""

    @property
    @abc.abstractmethod
    def location(self) -> StoreTarget:
        """The file or URL (masked when shown)."""

    @property
    @abc.abstractmethod
    def state_dir(self) -> Path:
        """This machine's folder for state shared by the processes of this store."""

    @property
    @abc.abstractmethod
    def key_path(self) -> Path:
        """The store's key file (secrets at rest, callback tokens)."""

    @abc.abstractmethod
    def reader(self) -> Connection:
        """A connection for reads (each statement sees every committed write)."""

    @abc.abstractmethod
    def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(connection)`` in a write transaction; its result once committed."""

    @abc.abstractmethod
    def schema_version(self) -> int:
        """The schema version stored in the database (0 when empty)."""

    @abc.abstractmethod
    def migrate(self) -> None:
        """Bring the schema up to date, check the store's key, open its sealer."""

    @abc.abstractmethod
    def stats(self) -> WriteStats:
        """How many write transactions ran and how long threads waited to write."""

    @abc.abstractmethod
    def trace(self, callback: Callable[[str], None] | None) -> None:
        """Call ``callback`` with every SQL statement run (``None``: stop)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close every connection; the next use opens new ones."""

    def lock_keys(self, conn: Connection, *, shared: bool = False) -> None:  # noqa: B027
        """Inside a write, before reading which idempotency keys are stored in order to
        insert the missing ones (``shared``: before an ``INSERT ... ON CONFLICT`` of one):
        no other writer inserts keys between that read and this write's commit. SQLite's
        write transactions already exclude each other: nothing to do."""

    def insert_events(self, conn: Connection, values: list[Any]) -> int:
        """Insert events, ``(job_id, at, type, data)`` flattened into ``values``, in one
        statement; the last one's sequence."""
        rows = conn.execute(_RETURNING_SEQ[len(values) // 4], values)
        return max((int(row[0]) for row in rows.fetchall()), default=0)

    @abc.abstractmethod
    def wait_for_events(
        self,
        job_id: str,
        fetch: Callable[[], list[Event]],
        timeout: float,
        *,
        clock: Clock,
        interval: float,
    ) -> list[Event]:
        """``fetch()`` once something may have changed for ``job_id``, until it returns
        events or ``timeout`` passes on ``clock`` (then ``[]``)."""


def open_database(target: StoreTarget) -> Database:
    """The :class:`Database` of a store file or URL (nothing is connected yet)."""
    if isinstance(target, PostgresUrl):
        from ._postgres import PostgresDatabase  # here: psycopg is an optional extra

        return PostgresDatabase(target)
    from ._sqlite import SqliteDatabase

    return SqliteDatabase(target)
