"""A channel module that cannot be imported: importing it raises RuntimeError."""

raise RuntimeError("this plugin's module is broken")
