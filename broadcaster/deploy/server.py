"""Running the web application as a service: listen, tell systemd, keep its watchdog fed, stop.

``broadcaster serve`` calls :func:`run_server`. Before anything else it sets a private umask
and takes the data directory's lock, so a second server on the same directory stops before it
writes or prints anything; it raises its open-file limit as far as the system allows
(:mod:`broadcaster.deploy.filelimit`); it makes what earlier runs left there private
(:mod:`broadcaster.deploy.datadir`), builds the application, starts it (and with it the
:class:`~broadcaster.service.BroadcasterService`), opens the listening socket (with the limits
on slow and greedy clients of :mod:`broadcaster.deploy.listen`), freezes what
start-up built out of the garbage collector's rounds, and only then says "serving on" and sends
``READY=1``; while serving it sends ``WATCHDOG=1`` as long as the event loop turns and the
database thread answers; on SIGTERM or SIGINT it sends ``STOPPING=1`` and stops the service
cleanly (deliveries in flight are resumed at the next start). Under systemd, logs go to the
journal with their fields (:mod:`broadcaster.deploy.journal`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from broadcaster.api.keys import SERVICE
from broadcaster.config import Config
from broadcaster.deploy.backup import data_dir_lock
from broadcaster.deploy.datadir import PRIVATE_UMASK, make_private
from broadcaster.deploy.filelimit import raise_open_file_limit
from broadcaster.deploy.journal import use_journal_if_attached
from broadcaster.deploy.listen import make_runner, open_listener
from broadcaster.deploy.sdnotify import SystemdNotifier
from broadcaster.service import BroadcasterService

log = logging.getLogger(__name__)


async def database_answers(service: BroadcasterService) -> bool:
    """The liveness check behind each watchdog keep-alive: a query on the database thread."""
    row = await service.database.run(lambda: service.database.conn.execute("SELECT 1").fetchone())
    return row is not None and row[0] == 1


YOUNG_COLLECTION_THRESHOLD = 50_000
"""Tracked objects allocated (net) between collections of the youngest generation (Python's
default is 700)."""


def freeze_startup_objects() -> None:
    """Exempt everything built at start from cyclic garbage collection (``gc.freeze``), and
    collect the youngest generation less often.

    The configuration, target registry, channels and device sessions live as long as the
    process; without this, every full collection during a large alert rescans them all. A
    fan-out keeps state for each delivery for seconds: at the default threshold it is scanned
    again and again as it ages through the generations (about 80 ms of a 10,000-box alert
    over MQTT, against 15-18 ms at this threshold). Cyclic garbage waits a little longer to be
    freed; the few megabytes that may be are nothing beside a fan-out's own.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, middle, old)


async def serve(app: web.Application, *, host: str, port: int) -> None:
    """Serve ``app`` until SIGTERM or SIGINT, with systemd notifications when under systemd.

    The caller holds the data directory's lock (:func:`run_server` does).
    """
    service: BroadcasterService = app[SERVICE]
    notifier = SystemdNotifier()
    runner = make_runner(app, service.config.server)
    listener: asyncio.Server | None = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await runner.setup()
        listener = await open_listener(
            runner, host, port, service.config.server, service.turned_away
        )
        freeze_startup_objects()
        serving = f"serving on http://{host}:{port} (data in {service.data_dir})"
        print(f"broadcaster: {serving}", flush=True)
        notifier.ready(serving)
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


def run_server(config: Config, *, data_dir: Path) -> None:
    """Blocking entry point for ``broadcaster serve``: ``config`` on ``data_dir``.

    Raises DeployError, before writing or printing anything, when another server holds the
    data directory.
    """
    # Imported here: the application pulls in the console and every channel plugin.
    from broadcaster.api.app import make_app

    os.umask(PRIVATE_UMASK)
    with data_dir_lock(data_dir, purpose="serve"):
        use_journal_if_attached(logging.getLogger().level or logging.INFO)
        files = raise_open_file_limit()
        log.info("open files: up to %d (the soft limit was %d)", files.soft, files.before)
        # APScheduler logs every job it adds and runs at INFO; runs are logged by the scheduler.
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        make_private(data_dir)
        app = make_app(BroadcasterService(config, data_dir=data_dir))
        asyncio.run(serve(app, host=config.server.host, port=config.server.port))
