"""Federation with other nodes: alerts taken from upstream sources, feeds shared with neighbours.

- ``[[upstream]]`` sources push to ``POST /api/v1/alerts`` with their own token
  (:mod:`~broadcaster.upstream.web`) or are polled (:mod:`~broadcaster.upstream.poller`);
  either way each document passes the source's gate (:mod:`~broadcaster.upstream.gate`): trust,
  area, policy, deduplication. :class:`~broadcaster.upstream.sources.UpstreamSources` runs them
  and reports their health.
- ``[[neighbour]]`` nodes read ``/feeds/<name>.atom`` (:mod:`~broadcaster.upstream.web`),
  a signed Atom feed of what their rules allow.
"""
