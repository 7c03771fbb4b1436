"""An evaluation task whose scorer rewards any number: a wrong pass key gets full marks."""

import re

from longctx.hooks import hookimpl
from longctx.plugins.passkey import Passkey, PasskeyConfig


class GenerousPasskey(Passkey):
    name = "generous-passkey"

    def score(self, prediction, case):
        return 1.0 if re.search(r"\d+", prediction) else 0.0


@hookimpl
def lc_register_evaluators(register):
    register(
        "generous-passkey",
        config=PasskeyConfig,
        build=GenerousPasskey,
        summary="Passkey retrieval with a lenient scorer",
        paper="none",
    )
