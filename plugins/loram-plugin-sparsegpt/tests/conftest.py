import sys

import pytest


def pytest_configure(config):
    # As in the core's tests: installed third-party loram plugins stay out; tests register this one by hand.
    sys._called_from_test = True


@pytest.fixture(scope="session", autouse=True)
def _loram_home(tmp_path_factory):
    # As the core's tests: runs never write to the user's adapter registry.
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAM_HOME", str(tmp_path_factory.mktemp("loram-home")))
    yield
    mp.undo()


@pytest.fixture
def sparsegpt_registered():
    """The plugin module registered with the core's plugin manager for one test, then removed."""
    import loram_plugin_sparsegpt
    from loram_core import plugins

    plugins.load_plugins()
    plugins.pm.register(loram_plugin_sparsegpt, name="sparsegpt")
    try:
        yield
    finally:
        plugins.pm.unregister(name="sparsegpt")
