"""The hpcos pytest plugin (registered through the ``pytest11`` entry point)."""

from harness import hookspecs


def pytest_addhooks(pluginmanager):
    pluginmanager.add_hookspecs(hookspecs)
