"""Scheduled test broadcasts, link checks and the notices they raise for officers.

- :mod:`.config`: the ``[scheduler]`` table and its validation;
- :mod:`.scheduler`: :class:`~.scheduler.ScheduledOperations` (started by the service) and the
  APScheduler-based :class:`~.scheduler.TestBroadcastScheduler`;
- :mod:`.runs`: one run (silent, audible test, exercise) and its per-target report;
- :mod:`.linkcheck`: periodic silent probes per channel;
- :mod:`.notify`: messages to the configured officers;
- :mod:`.store`: the tables of schema v5; :mod:`.api`: the HTTP API.
"""
