"""Channel plugins: one module per channel, registered in the entry-point group ``broadcaster.channels``."""
