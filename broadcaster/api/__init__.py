"""The HTTP API (aiohttp): alerts in, delivery state out, the CAP Atom feed, health and metrics."""
