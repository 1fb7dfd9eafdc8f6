"""Batches on a cluster: the worker side of ``run_batch(..., executor=...)``, and Dask.

A client records a batch in the shared store, claims it, and hands each unfinished
input to an executor as one task: :func:`run_item` with a :class:`Ticket` (the batch
id, the input's number, the client's claim, a nonce of the run). Nothing else
travels: no request, no credential, no setting. Each worker process runs its tasks on
one orchestrator of its own (:func:`worker_orchestrator`), built from *its*
environment and configuration (``VOXHUB_STORE``, ``VOXHUB_CONFIG``,
``VOXHUB_<PROFILE>_<FIELD>``), reused by every task of that process and closed when
it exits. The task runs the input's steps exactly as the threaded path does (submit,
wait, fetch, export, write, close), records the outcome on the item, and returns an
:class:`ItemReport` (plain data); the client reads the outcome back from the store.

A worker that dies mid-job loses nothing: the executor runs the task again
elsewhere, and the job's claim (owner + lease; a dead owner on the same host is seen
at once) makes the new run take the job over, asking the vendor about a submission
in doubt before sending anything again.

With Dask (``pip install 'voxhub[dask]'``)::

    from distributed import Client

    with Client("tcp://scheduler:8786") as client, Orchestrator() as orch:
        for outcome in orch.run_many(requests, executor=client.get_executor(),
                                     concurrency=64):
            ...

or on the command line ``voxhub transcribe ... --executor dask://scheduler:8786``
(:func:`dask_executor`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._batch_plan import one_line
from ._batch_remote import ItemReport, RemoteItemError, Ticket, this_worker
from .config import Config, default_config_path
from .errors import ConfigurationError, InvalidInputError, VoxhubError

if TYPE_CHECKING:
    from .orchestrator import Orchestrator

__all__ = [
    "ItemReport",
    "RemoteItemError",
    "Ticket",
    "close_worker_orchestrators",
    "dask_executor",
    "run_item",
    "scheduler_address",
    "worker_orchestrator",
]

_orchestrators: dict[tuple[str, str], Orchestrator] = {}
_cache_lock = threading.Lock()


def worker_orchestrator(
    *, store: str | Path | None = None, config: str | Path | None = None
) -> Orchestrator:
    """This process's orchestrator for ``store`` and ``config`` (by default those of
    the environment: ``VOXHUB_STORE``, ``VOXHUB_CONFIG``), built on first use and
    reused by every task after (thread-safe); closed when the process exits."""
    store_key = str(store) if store is not None else os.environ.get("VOXHUB_STORE", "")
    config_path = Path(config) if config is not None else default_config_path()
    key = (store_key, str(config_path))
    with _cache_lock:
        orch = _orchestrators.get(key)
        if orch is None:
            from .orchestrator import Orchestrator

            orch = Orchestrator(store=store, config=Config.load(config))
            _orchestrators[key] = orch
        return orch


def close_worker_orchestrators() -> None:
    """Close every cached worker orchestrator (at process exit; a later task builds anew)."""
    with _cache_lock:
        orchestrators = list(_orchestrators.values())
        _orchestrators.clear()
    for orch in orchestrators:
        with contextlib.suppress(Exception):  # exiting: nothing left to tell
            orch.close_resources()


atexit.register(close_worker_orchestrators)


def run_item(ticket: Ticket) -> ItemReport:
    """The task a client sends per input: run the ticket's input here, on this process's
    :func:`worker_orchestrator`, and record its outcome in the store.

    Never raises: an orchestrator that cannot be built (a configuration or store error)
    comes back as a ``refused`` report whose one-line error the client records.
    """
    try:
        orch = worker_orchestrator()
    except VoxhubError as exc:
        error: str = one_line(exc)
    except Exception as exc:  # noqa: BLE001 - e.g. an unreadable store: what, not a traceback
        error = f"{type(exc).__name__}: {one_line(exc)}"
    else:
        return orch.run_item(ticket)
    return ItemReport(
        ticket.batch_id, ticket.seq, "refused", this_worker(),
        f"the worker cannot run voxhub: {error}",
    )  # fmt: skip


def scheduler_address(spec: str) -> str:
    """``dask://HOST:PORT`` as Dask's ``tcp://HOST:PORT``; a typed error naming
    ``executor`` for anything else."""
    scheme, sep, rest = spec.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "dask" or not sep or not host or "@" in rest or "/" in rest or not port.isdigit():
        shown = spec if "@" not in spec else scheme + "://…"  # never echo a user:password@
        raise InvalidInputError(
            f"executor must be dask://HOST:PORT (a Dask scheduler's address), not {shown!r}",
            field="executor",
        )
    return f"tcp://{host}:{port}"


@contextlib.contextmanager
def dask_executor(spec: str, *, timeout: float | None = None) -> Iterator[Executor]:
    """Connect to the Dask scheduler at ``dask://HOST:PORT``; yields the client's
    executor (``Client.get_executor``) and closes the client after.

    ``distributed`` is imported only here: without the ``dask`` extra, and when the
    scheduler cannot be reached within ``timeout`` seconds (default: Dask's
    ``distributed.comm.timeouts.connect``, e.g. ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=5s``),
    a one-line :class:`~voxhub.errors.ConfigurationError` says so.
    """
    address = scheduler_address(spec)
    try:
        from distributed import Client
    except ImportError:
        raise ConfigurationError(
            "--executor dask://… needs Dask: pip install 'voxhub[dask]'"
        ) from None
    try:
        wait: dict[str, float] = {} if timeout is None else {"timeout": timeout}
        client: Any = Client(address, set_as_default=False, **wait)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as exc:
        raise ConfigurationError(
            f"cannot reach the Dask scheduler at {spec}: {type(exc).__name__}"
            f"{': ' + one_line(exc) if str(exc) else ''}"
        ) from None
    try:
        yield client.get_executor(pure=False)
    finally:
        client.close()
