"""City and county nodes as one system: delivery state reported upward and kept at the city.

The relay down is the ``relay`` channel (``channels/relay``); the division rule of each node's
officers is :mod:`broadcaster.node`; ``docs/federation.md`` describes the whole.
"""
