"""Channel plugins: one module per channel, each registered in the entry-point group
``broadcaster.channels``.
"""
