"""The longctx plugin-conformance kit (being written)."""
