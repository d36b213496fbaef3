"""Serving HTTP: in this process, or in N worker processes sharing the port.

Several workers bind the same port with SO_REUSEPORT and the kernel spreads
new connections over them. We chose it over a supervisor such as gunicorn's
aiohttp worker: no further dependency, and the parent keeps doing what only it
should do once (apply migrations, run the embedded PostgreSQL) while each
worker is the same `run` as a single process. Linux spreads connections
evenly; elsewhere SO_REUSEPORT may not balance, so use one worker there.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.process import BaseProcess
from types import FrameType

from aiohttp import web

from chatsvc import logs
from chatsvc.app import create_app
from chatsvc.keys import METRICS
from chatsvc.listening import CappedTCPSite, connection_limit
from chatsvc.settings import Settings

log = logging.getLogger("chatsvc")


def new_event_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def run(settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve until SIGTERM or SIGINT; settings.database_url must be set.

    What aiohttp's run_app does, with our listening site (a connection cap).
    """
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    serving = loop.create_task(_serve(settings, reuse_port))
    try:
        loop.run_until_complete(serving)
    except (web.GracefulExit, KeyboardInterrupt):
        pass  # SIGTERM / SIGINT, raised by the runner's signal handlers
    finally:
        if not serving.done():
            serving.cancel()  # its cleanup runs now: see _serve
            with contextlib.suppress(asyncio.CancelledError):
                loop.run_until_complete(serving)
        left = asyncio.all_tasks(loop)
        for task in left:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*left, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _serve(settings: Settings, reuse_port: bool) -> None:
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        handle_signals=True,
        access_log=None,  # chatsvc.observe writes one JSON line per request instead
        # aiohttp closes a connection that has not sent a whole request head
        # this long after opening or after its previous answer
        # (tests/test_exhaustion.py pins it), which makes it the header timeout.
        keepalive_timeout=settings.idle_timeout,
        # SIGTERM / SIGINT: stop accepting, end event streams, let requests in
        # flight finish for up to this long, then close the pool.
        shutdown_timeout=settings.shutdown_grace,
    )
    await runner.setup()
    try:
        site = CappedTCPSite(
            runner,
            settings.host,
            settings.port,
            max_connections=connection_limit(settings.max_connections, settings.pool_max_size),
            # Connections a burst may open before the service accepts them; past
            # it, clients wait for a SYN retry (1 s). aiohttp's default is 128.
            backlog=1024,
            reuse_port=reuse_port or None,
            on_refusal=app[METRICS].refuse_connection,
        )
        await site.start()
        log.info(
            "serving on http://%s:%d (at most %d connections)",
            settings.host,
            settings.port,
            site.max_connections,
        )
        await asyncio.Event().wait()  # until a signal ends the loop
    finally:
        await runner.cleanup()


def _stop_with(parent: int) -> None:
    """Makes the kernel send this worker SIGTERM when its parent dies, even by SIGKILL (Linux)."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1  # <sys/prctl.h>
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # it died before we asked
        sys.exit(0)


def _worker(settings_json: str, parent: int) -> None:
    # Its own process group: a terminal's Ctrl-C reaches the parent only, which
    # then stops each worker once, with SIGTERM.
    os.setpgid(0, 0)
    _stop_with(parent)
    settings = Settings.model_validate_json(settings_json)
    logs.configure(settings.log_level)
    run(settings, reuse_port=True)


def supervise(settings: Settings, workers: int) -> int:
    """Runs workers processes until SIGTERM / SIGINT, or until one of them fails; the exit code."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited loop or sockets
    processes: list[BaseProcess] = [
        context.Process(
            target=_worker, args=(settings.model_dump_json(), os.getpid()), name=f"chatsvc-worker-{n}"
        )
        for n in range(workers)
    ]
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: each worker shuts down gracefully

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for process in processes:
            process.start()
        log.info("started %d workers", workers)
        while not stopping and all(process.is_alive() for process in processes):
            time.sleep(0.2)
        if not stopping:  # a worker died on its own: stop the rest, let the supervisor above restart us
            failed = next(process for process in processes if not process.is_alive())
            log.error("worker %s exited with %s; stopping", failed.name, failed.exitcode)
            stop(signal.SIGTERM, None)
        deadline = time.monotonic() + settings.shutdown_grace + 10
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.error("worker %s did not stop in time; killing it", process.name)
                process.kill()
                process.join()
        codes = [process.exitcode for process in processes]
        return 0 if all(code == 0 for code in codes) else 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
