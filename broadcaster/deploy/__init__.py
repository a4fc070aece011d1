"""Running broadcaster as a system service: install, backup and restore, systemd integration.

- :mod:`.install`: ``broadcaster install`` (user, directories, configuration, launcher, unit);
- :mod:`.backup`: ``broadcaster backup`` / ``restore`` with SQLite's online backup;
- :mod:`.server`: ``broadcaster serve`` under systemd (READY, WATCHDOG, STOPPING);
- :mod:`.sdnotify`: the sd_notify datagram protocol; :mod:`.journal`: structured journald logs;
- :mod:`.cli`: the subcommands.
"""
