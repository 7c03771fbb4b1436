"""Deliberately broken longctx plugins: each breaks one contract, so the conformance kit's tests can show
it is caught with a precise message (``tests/test_conformance_broken.py``). Loaded through fake entry
points; never installed."""
