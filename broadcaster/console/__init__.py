"""The warning officers' web console, served at ``/console/``.

Log in; compose an alert from a hazard template and a colour level, choose the area from the
administrative tree or draw it on the map, preview what every channel will send (SMS segments,
RDS PS/RT, push notification, the spoken audio) and how many targets it reaches; a second
officer approves or rejects; the delivery board then follows every target live, and Update and
Cancel start from it. Device health (with the scheduler's notices), scheduled test reports,
alert history, officers, API tokens and the audit log have their own pages. The interface is
Chinese with an English toggle and loads nothing from elsewhere.

:func:`make_console_app` builds the sub-application; :mod:`broadcaster.console.cli` adds the
``user`` and ``audit`` commands.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from broadcaster.service import BroadcasterService


def make_console_app(service: BroadcasterService) -> web.Application:
    """The console sub-application (imported on use: the CLI commands do not need it)."""
    from broadcaster.console.web import make_console_app as build

    return build(service)


__all__ = ["make_console_app"]
