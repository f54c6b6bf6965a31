import sys

import pytest


def pytest_configure(config):
    # As in loram's own tests: installed plugins stay out of the run; the tests register this one themselves.
    sys._called_from_test = True


@pytest.fixture
def wanda_registered():
    """The plugin module registered with loram for one test, as its entry point would register it."""
    import loram_plugin_wanda
    from loram_core import plugins

    plugins.load_plugins()
    if plugins.pm.get_plugin("wanda") is not None:  # `pytest --loram-plugin wanda` loaded the entry point already
        yield
        return
    plugins.pm.register(loram_plugin_wanda, name="wanda")
    try:
        yield
    finally:
        plugins.pm.unregister(name="wanda")
