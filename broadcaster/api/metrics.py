"""``GET /metrics`` in the Prometheus text exposition format (version 0.0.4).

Deliveries by channel and state, send attempts handed to each channel since start and those
that failed (retryable or permanent: one target's failures show here and on the delivery, not
as the channel's health), channels loaded and failed, targets in the registry, whether the
data directory's disk is full, connections turned away for too many from one address, and each
upstream source's state, failures in a row, lag and documents by outcome. No secret or personal
data is exported.
"""

from __future__ import annotations

from aiohttp import web

from broadcaster.api.keys import SERVICE
from broadcaster.upstream.gate import SourceHealth

routes = web.RouteTableDef()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def upstream_lines(sources: dict[str, SourceHealth], now: float) -> list[str]:
    """Each upstream source: up, failures in a row, seconds since its last success."""
    lines = [
        "# HELP broadcaster_upstream_up 1 while an upstream source's last attempt succeeded.",
        "# TYPE broadcaster_upstream_up gauge",
    ]
    lines += [
        f'broadcaster_upstream_up{{source="{_label(n)}"}} {int(h.ok)}' for n, h in sources.items()
    ]
    lines += [
        "# HELP broadcaster_upstream_failures Failed attempts in a row of an upstream source.",
        "# TYPE broadcaster_upstream_failures gauge",
    ]
    lines += [
        f'broadcaster_upstream_failures{{source="{_label(n)}"}} {h.failures}'
        for n, h in sources.items()
    ]
    lines += [
        "# HELP broadcaster_upstream_lag_seconds Seconds since an upstream source's last success.",
        "# TYPE broadcaster_upstream_lag_seconds gauge",
    ]
    for name, health in sources.items():
        lag = health.lag(now)
        if lag is not None:
            lines.append(f'broadcaster_upstream_lag_seconds{{source="{_label(name)}"}} {lag:.0f}')
    lines += [
        "# HELP broadcaster_upstream_documents_total Documents from each upstream source by"
        " outcome since start.",
        "# TYPE broadcaster_upstream_documents_total counter",
    ]
    for name, health in sources.items():
        for outcome, n in sorted(health.counts.items()):
            labels = f'source="{_label(name)}",outcome="{outcome}"'
            lines.append(f"broadcaster_upstream_documents_total{{{labels}}} {n}")
    return lines


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    counts = await service.store.deliveries.state_counts()
    targets = await service.store.targets.counts()
    warnings = await service.store.deliveries.warning_counts()
    lines = [
        "# HELP broadcaster_deliveries Deliveries in the store by channel and state.",
        "# TYPE broadcaster_deliveries gauge",
    ]
    for (channel, state), n in sorted(counts.items()):
        lines.append(
            f'broadcaster_deliveries{{channel="{_label(channel)}",state="{_label(state)}"}} {n}'
        )
    lines += [
        "# HELP broadcaster_delivery_warnings Deliveries that went out with a warning (a"
        " language that could not be spoken), by channel.",
        "# TYPE broadcaster_delivery_warnings gauge",
    ]
    for channel in sorted(set(warnings) | {c for c, _ in counts}):
        n = warnings.get(channel, 0)
        lines.append(f'broadcaster_delivery_warnings{{channel="{_label(channel)}"}} {n}')
    lines += [
        "# HELP broadcaster_sends_total Deliveries handed to each channel since start.",
        "# TYPE broadcaster_sends_total counter",
    ]
    for channel, n in sorted(service.dispatcher.sent_total.items()):
        lines.append(f'broadcaster_sends_total{{channel="{_label(channel)}"}} {n}')
    lines += [
        "# HELP broadcaster_send_failures_total Failed send attempts since start by channel and"
        " kind (retryable: sent again later; permanent: the delivery failed).",
        "# TYPE broadcaster_send_failures_total counter",
    ]
    for (channel, kind), n in sorted(service.dispatcher.failed_total.items()):
        lines.append(
            f'broadcaster_send_failures_total{{channel="{_label(channel)}",kind="{kind}"}} {n}'
        )
    lines += [
        "# HELP broadcaster_channel_up 1 for each channel running, 0 for each that failed.",
        "# TYPE broadcaster_channel_up gauge",
    ]
    for channel in sorted(service.channels):
        lines.append(f'broadcaster_channel_up{{channel="{_label(channel)}"}} 1')
    for failure in service.failures:
        lines.append(f'broadcaster_channel_up{{channel="{_label(failure.channel)}"}} 0')
    lines += [
        "# HELP broadcaster_channel_faults_total Unexpected exceptions of running channels.",
        "# TYPE broadcaster_channel_faults_total counter",
    ]
    for fault in service.faults.all():
        labels = f'channel="{_label(fault.channel)}",point="{_label(fault.point)}"'
        lines.append(f"broadcaster_channel_faults_total{{{labels}}} {fault.count}")
    lines += [
        "# HELP broadcaster_targets Targets in the registry by channel.",
        "# TYPE broadcaster_targets gauge",
    ]
    for channel, n in sorted(targets.items()):
        lines.append(f'broadcaster_targets{{channel="{_label(channel)}"}} {n}')
    lines += [
        "# HELP broadcaster_connections_turned_away_total Connections turned away since start"
        " for having too many open from one address ([server] connections_per_client; the log"
        " names the addresses).",
        "# TYPE broadcaster_connections_turned_away_total counter",
        f"broadcaster_connections_turned_away_total {service.turned_away.total}",
    ]
    lines += upstream_lines(service.upstream.health(), service.clock())
    disk = service.database.space.check()
    lines += [
        "# HELP broadcaster_disk_full 1 while writes fail (or would) for lack of disk space.",
        "# TYPE broadcaster_disk_full gauge",
        f"broadcaster_disk_full {int(disk.full)}",
    ]
    if disk.free_bytes is not None:
        lines += [
            "# HELP broadcaster_disk_free_bytes Free bytes on the data directory's filesystem.",
            "# TYPE broadcaster_disk_free_bytes gauge",
            f"broadcaster_disk_free_bytes {disk.free_bytes}",
        ]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8")
