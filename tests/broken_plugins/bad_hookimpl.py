"""A plugin whose hookimpl does not match the hookspec: the argument is ``registrar``, not ``register``."""

from longctx.hooks import hookimpl


@hookimpl
def lc_register_attention(registrar):  # pragma: no cover - pluggy refuses it
    pass
