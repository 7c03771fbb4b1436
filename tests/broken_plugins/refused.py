"""Registrations the kernel refuses (so the plugin fails to load): a name with a space, a build that is
not callable. The kit still judges each registration by the precise rule it breaks."""

import attrs

from longctx.hooks import hookimpl


@attrs.frozen
class NoParams:
    pass


@hookimpl
def lc_register_context_reducers(register):
    register("bad name", config=NoParams, build=lambda c, ctx: None, summary="broken", paper="none")
    register("not-callable", config=NoParams, build="build_me", summary="broken", paper="none")
