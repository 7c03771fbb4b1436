"""Contributed tooling (the plugin-conformance kit) and example third-party plugins."""
