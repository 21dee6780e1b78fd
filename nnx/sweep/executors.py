"""Where the trials run: this process, fresh local processes ("spawn") or a Dask cluster; each gives the records
back as the trials finish (with `batched`, as each task, a list of trials trained as stacks, finishes)."""

from __future__ import annotations

import multiprocessing
import signal
import sys
from collections.abc import Callable, Generator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, cast

from nnx import _checks
from nnx.sweep.batched import StackInterrupted, run_stack, stack_tasks
from nnx.sweep.space import OWNER
from nnx.sweep.trials import Trial, run_trial, trial_record

DASK_HINT = 'pip install "nnx-nnfs[distributed]"'


def run_trials(
    trials: list[Trial], workers: int | None, client: Any, batched: bool = False
) -> Generator[dict, None, None]:
    """The trials' records, as they finish: each trial a task, or with `batched` each stack of trials a task."""
    if not batched:
        yield from _run(run_trial, trials, workers, client)
        return
    tasks = stack_tasks(trials, cast(int, workers) if client is None else _dask_threads(client))
    finished = _run(run_stack, tasks, workers, client)
    try:
        for records in finished:
            yield from records
    except StackInterrupted as interrupted:  # Ctrl-C in a task trained here: its finished and stopped trials
        yield from interrupted.records
        raise
    finally:
        finished.close()


def _run(function: Callable[[Any], Any], tasks: list, workers: int | None, client: Any) -> Generator[Any, None, None]:
    """`function(task)` for every task, as the tasks finish; in this process when one worker (or one task) is
    all there is to use. `workers` is set whenever there is no `client`."""
    if client is not None:
        yield from _on_dask(function, tasks, client)
        return
    local = min(cast(int, workers), len(tasks))
    if local == 1:
        for task in tasks:
            yield function(task)
    else:
        yield from _in_processes(function, tasks, local)


def _in_processes(function: Callable[[Any], Any], tasks: list, workers: int) -> Generator[Any, None, None]:
    """Fresh ("spawn") processes: nothing inherited but the environment, which a normal run has too."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_ignore_interrupts)
    futures = {}
    try:
        futures = {pool.submit(function, task): task for task in tasks}
        for future in as_completed(futures):
            yield _outcome(future, futures[future])
    finally:
        if not all(future.done() for future in futures):  # Ctrl-C, or the caller stopped early
            _terminate(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C reaches the whole process group, and only the parent decides what stops."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _terminate(pool: ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _on_dask(function: Callable[[Any], Any], tasks: list, client: Any) -> Generator[Any, None, None]:
    from distributed import as_completed as dask_completed

    futures = {}
    try:
        futures = {client.submit(function, task, pure=False): task for task in tasks}
        for future in dask_completed(futures, loop=client.loop):
            yield _outcome(future, futures[future])
    finally:
        pending = [future for future in futures if not future.done()]
        if pending:
            client.cancel(pending)


def _dask_threads(client) -> int:
    """How many tasks the cluster runs at once: its worker threads."""
    return max(1, sum(client.nthreads().values()))


def _outcome(future, task):
    """The task's result; when the worker itself broke (killed, out of memory, ...), the failed record of the trial,
    or of every trial of a batched task (a list)."""
    try:
        return future.result()
    except BrokenProcessPool as error:
        broken = BrokenProcessPool(
            f"a worker process died ({error}): killed, out of memory, or a script started the sweep outside "
            f"`if __name__ == '__main__':` (workers start with 'spawn', which imports the main module)"
        )
        return _failed(task, broken)
    except Exception as error:
        return _failed(task, error)


def _failed(task, error: Exception):
    if isinstance(task, list):
        return [_failed(trial, error) for trial in task]
    return trial_record(task, {"epoch": [], "loss": [], "accuracy": []}, None, error=error)


def connect(dask, timeout: float):
    """(client, owned): a `distributed.Client` as given, or one connected to the address (owned: closed after)."""
    try:
        import distributed
    except ImportError as error:
        raise ImportError(
            f"{OWNER} on Dask needs Dask's distributed scheduler ({error}); install it: {DASK_HINT}"
        ) from None
    if isinstance(dask, distributed.Client):
        return dask, False
    if not isinstance(dask, str):
        raise TypeError(
            f"{OWNER} dask must be a scheduler address or a distributed.Client, got {_checks.describe(dask)}; "
            f"pass e.g. dask='tcp://127.0.0.1:8786'"
        )
    timeout = _checks.positive(timeout, "dask_timeout", OWNER)
    try:
        client = distributed.Client(dask, timeout=timeout, set_as_default=False)
    except ValueError as error:
        raise ValueError(
            f"{OWNER} dask address {dask!r} is malformed ({error}); pass e.g. tcp://127.0.0.1:8786"
        ) from None
    except OSError as error:
        raise ConnectionError(
            f"{OWNER} could not reach the Dask scheduler at {dask!r} within {timeout:g} s ({error}); start one with "
            f"`dask scheduler` and workers with `dask worker {dask}`, or check the address"
        ) from None
    try:
        client.wait_for_workers(1, timeout=timeout)
    except (TimeoutError, OSError):
        client.close()
        raise ConnectionError(
            f"{OWNER} found the Dask scheduler at {dask!r} but no worker within {timeout:g} s; start workers with "
            f"`dask worker {dask}`"
        ) from None
    return client, True


def importing_main_in_a_worker() -> bool:
    """True while a process started by 'spawn' runs the user's script as ``__mp_main__`` (the script calls `run`
    at import, outside ``if __name__ == "__main__":``); multiprocessing points both names at one module otherwise."""
    return "__mp_main__" in sys.modules and sys.modules["__mp_main__"] is not sys.modules.get("__main__")
