"""pytest plugin of the longctx conformance kit (placeholder until the kit lands)."""


def pytest_addoption(parser):  # pragma: no cover - replaced by the kit
    group = parser.getgroup("longctx")
    group.addoption("--lc-plugin", action="append", default=[], metavar="NAME",
                    help="run the longctx family contracts on the installed plugin NAME")
