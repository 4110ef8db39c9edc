"""Where points are evaluated: in this process, in local worker processes, or on Dask.

All three run :func:`~spikeforge.dse.evaluate.evaluate_point` on the same task
dictionaries and hand back the same records; only the ``worker`` and timing
fields differ. The runner submits tasks and waits for any one to finish, so
results are stored the moment they exist.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ipaddress
import multiprocessing
import re
from collections.abc import Iterable
from typing import Any

from spikeforge.errors import SpikeforgeError
from spikeforge.signals import held
from spikeforge.yamlio import short

from .evaluate import evaluate_point

CONNECT_TIMEOUT = "10s"  # how long to try a scheduler address before giving up
MAX_WORKERS = 256  # local worker processes at most (--workers)
STOP_GRACE_S = 5.0  # how long a terminated worker may take to exit before it is killed

__all__ = ["MAX_WORKERS", "DaskExecutor", "Executor", "InlineExecutor", "LocalExecutor",
           "check_address", "make_executor"]

_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})"
_HOST = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")
_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9A-Fa-f:.]+\]|[^/:\[\]\s]+):([0-9]{1,5})$")


def check_address(text: str) -> str:
    """``text`` if it is a scheduler address ``tcp://HOST:PORT`` (or ``tls://``), else ValueError.

    Checked before connecting: a host name or an IPv4 address, or an IPv6 one in
    brackets, and a port in 1..65535.
    """
    m = _ADDRESS.match(text) if isinstance(text, str) and len(text) <= 300 else None
    if m is None:
        raise ValueError("a scheduler address tcp://HOST:PORT is needed")
    host, port = m.group(2), int(m.group(3))
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError(f"{host} is not an IPv6 address") from None
    elif not _HOST.match(host):
        raise ValueError(f"{host[:60]!r} is not a host name or address")
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} is not in 1..65535")
    return text


class Executor:
    """Submit tasks, wait for the first to finish, shut down."""

    description = ""
    workers = 0

    def submit(self, task: dict[str, Any]) -> Any:
        raise NotImplementedError

    def wait_any(self, futures: Iterable[Any]) -> set[Any]:
        """The finished futures among ``futures`` (at least one)."""
        raise NotImplementedError

    def result(self, future: Any) -> dict[str, Any]:
        return future.result()

    def close(self, cancel: bool = False) -> None:
        pass

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type, *_) -> None:
        self.close(cancel=exc_type is not None)


class _Deferred:
    """A task the inline executor evaluates when it is waited for."""

    def __init__(self, task: dict[str, Any]):
        self.task = task
        self.record: dict[str, Any] | None = None

    def result(self) -> dict[str, Any]:
        return self.record


class InlineExecutor(Executor):
    """Evaluates tasks in this process, one per :meth:`wait_any`, in submission order.

    Evaluating on wait rather than on submit lets the runner store each record
    before the next point starts, as it does with real workers.
    """

    description = "this process"
    workers = 1

    def submit(self, task: dict[str, Any]) -> _Deferred:
        return _Deferred(task)

    def wait_any(self, futures: Iterable[_Deferred]) -> set[_Deferred]:
        fut = next(iter(futures))
        if fut.record is None:
            fut.record = evaluate_point(fut.task)
        return {fut}


class LocalExecutor(Executor):
    """A pool of ``workers`` local processes (spawned: each its own torch, one thread)."""

    def __init__(self, workers: int):
        self.workers = workers
        self.description = f"{workers} local process{'es' if workers > 1 else ''}"
        self._pool = cf.ProcessPoolExecutor(max_workers=workers,
                                            mp_context=multiprocessing.get_context("spawn"))

    def submit(self, task: dict[str, Any]) -> cf.Future:
        return self._pool.submit(evaluate_point, task)

    def wait_any(self, futures: Iterable[cf.Future]) -> set[cf.Future]:
        done, _ = cf.wait(list(futures), return_when=cf.FIRST_COMPLETED)
        return done

    def close(self, cancel: bool = False) -> None:
        """Shut the pool down; ``cancel`` (an error, Ctrl-C, SIGTERM) also stops running points.

        No worker outlives this call: an interrupted study does not leave
        workers finishing points nobody stores (the pool has no public way to
        stop running tasks, so its processes are terminated, then killed).
        """
        with held():
            if not cancel:
                self._pool.shutdown(wait=True)
                return
            procs = list((getattr(self._pool, "_processes", None) or {}).values())
            for proc in procs:
                with contextlib.suppress(OSError, ValueError):
                    proc.terminate()
            for proc in procs:
                with contextlib.suppress(OSError, ValueError, AssertionError):
                    proc.join(STOP_GRACE_S)
                    if proc.is_alive():
                        proc.kill()
                        proc.join()
            self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor(Executor):
    """Tasks on a Dask cluster: a scheduler address (``tcp://host:8786``) or a Client."""

    def __init__(self, cluster: Any):
        try:
            from distributed import Client
        except ImportError:
            raise SpikeforgeError("--cluster needs dask.distributed "
                                  "(pip install 'dask[distributed]')") from None
        if isinstance(cluster, str):
            try:
                if not cluster.startswith("inproc://"):  # an in-process cluster (the API)
                    check_address(cluster)
            except ValueError as e:
                raise SpikeforgeError(f"--cluster {short(cluster)}: {e}") from None
            try:
                self._client = Client(cluster, timeout=CONNECT_TIMEOUT, set_as_default=False)
            except (OSError, TimeoutError) as e:
                raise SpikeforgeError(f"cannot reach the Dask scheduler at {cluster}: "
                                      f"{e.__class__.__name__}") from None
            self._own = True
        else:
            self._client, self._own = cluster, False
        self._futures: set[Any] = set()
        try:
            from distributed import as_completed

            self._done = as_completed(loop=self._client.loop)
            info = self._client.scheduler_info()
            self.workers = sum(w.get("nthreads", 1) for w in info.get("workers", {}).values())
            self.description = f"Dask {self._client.scheduler.address} ({self.workers} threads)"
        except BaseException:
            self.close(cancel=True)
            raise

    def submit(self, task: dict[str, Any]) -> Any:
        # the point key names the task: a point is a pure function of its settings
        fut = self._client.submit(evaluate_point, task, key=f"dse-point-{task['key']}")
        self._futures.add(fut)
        self._done.add(fut)
        return fut

    def wait_any(self, futures: Iterable[Any]) -> set[Any]:
        # Every future in flight came from submit, so the as_completed queue holds them all
        # (distributed.wait would need a default client, which this one is not).
        first = next(self._done)
        done = {first, *(f for f in self._done.next_batch(block=False))}
        self._futures -= done
        return done

    def close(self, cancel: bool = False) -> None:
        """Cancel the points in flight (on ``cancel``) and close a client this executor made."""
        with held():
            if cancel and self._futures:
                with contextlib.suppress(Exception):
                    self._client.cancel(list(self._futures))
            self._futures.clear()
            if self._own:
                with contextlib.suppress(Exception):
                    self._client.close()


def make_executor(workers: int, cluster: Any = None) -> Executor:
    """Dask when ``cluster`` is given, else ``workers`` local processes (0: this process)."""
    if cluster is not None:
        return DaskExecutor(cluster)
    if not 0 <= workers <= MAX_WORKERS:
        raise SpikeforgeError(f"--workers: must be 0..{MAX_WORKERS}, not {workers}")
    return InlineExecutor() if workers == 0 else LocalExecutor(workers)
