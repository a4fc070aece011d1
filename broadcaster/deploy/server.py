"""Running the web application as a service: listen, tell systemd, keep its watchdog fed, stop.

``broadcaster serve`` calls :func:`run_server`: it starts the application (and with it the
:class:`~broadcaster.service.BroadcasterService`), opens the listening socket (with the limits
on slow and greedy clients of :mod:`broadcaster.deploy.listen`), freezes what start-up built
out of the garbage collector's rounds, and only then sends ``READY=1``; while serving it sends
``WATCHDOG=1`` as long as the event loop turns and the database thread answers; on SIGTERM or
SIGINT it sends ``STOPPING=1`` and stops the service cleanly (deliveries in flight are resumed
at the next start). Under systemd, logs go to the journal with their fields
(:mod:`broadcaster.deploy.journal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal

from aiohttp import web

from broadcaster.api.keys import SERVICE
from broadcaster.deploy.backup import data_dir_lock
from broadcaster.deploy.journal import use_journal_if_attached
from broadcaster.deploy.listen import make_runner, open_listener
from broadcaster.deploy.sdnotify import SystemdNotifier
from broadcaster.service import BroadcasterService

log = logging.getLogger(__name__)


async def database_answers(service: BroadcasterService) -> bool:
    """The liveness check behind each watchdog keep-alive: a query on the database thread."""
    row = await service.database.run(lambda: service.database.conn.execute("SELECT 1").fetchone())
    return row is not None and row[0] == 1


def freeze_startup_objects() -> None:
    """Exempt everything built at start from cyclic garbage collection (``gc.freeze``).

    The configuration, target registry, channels and device sessions live as long as the
    process; without this, every full collection during a large alert rescans them all.
    """
    gc.collect()
    gc.freeze()


async def serve(app: web.Application, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, with systemd notifications when under systemd."""
    service = app[SERVICE]
    with data_dir_lock(service.data_dir, purpose="serve"):
        await _serve_locked(app, service, host, port)


async def _serve_locked(
    app: web.Application, service: BroadcasterService, host: str, port: int
) -> None:
    notifier = SystemdNotifier()
    runner = make_runner(app, service.config.server)
    listener: asyncio.Server | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await runner.setup()
        listener = await open_listener(runner, host, port, service.config.server)
        freeze_startup_objects()
        notifier.ready(f"serving on http://{host}:{port} (data in {service.data_dir})")
        watchdog = asyncio.create_task(
            notifier.keep_alive(lambda: database_answers(service)), name="watchdog"
        )
        await stop.wait()
        log.info("stopping")
        notifier.stopping()
        watchdog.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watchdog
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if listener is not None:
            listener.close()
        await runner.cleanup()
        notifier.close()


def run_server(app: web.Application, *, host: str, port: int) -> None:
    """Blocking entry point for ``broadcaster serve``."""
    use_journal_if_attached(logging.getLogger().level or logging.INFO)
    # APScheduler logs every job it adds and runs at INFO; runs are logged by the scheduler.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    asyncio.run(serve(app, host=host, port=port))
