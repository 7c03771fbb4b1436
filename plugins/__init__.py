"""First-party technique plugins, one package per technique; each is loaded through the\n``longctx.plugins`` entry-point group exactly like a third-party plugin."""
