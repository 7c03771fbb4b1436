"""First-party technique plugins, one package per technique.

Each is loaded through the ``longctx.plugins`` entry-point group exactly like a third-party plugin.
"""
