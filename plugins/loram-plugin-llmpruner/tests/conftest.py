import sys

import pytest


def pytest_configure(config):
    # As in the core's tests: installed third-party loram plugins stay out; tests register this one by hand.
    sys._called_from_test = True


@pytest.fixture(scope="session", autouse=True)
def _loram_home(tmp_path_factory):
    # As the core's tests: runs started here never write to the user's adapter registry.
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAM_HOME", str(tmp_path_factory.mktemp("loram-home")))
    yield
    mp.undo()


@pytest.fixture
def llmpruner_registered():
    """The plugin module registered with the core's plugin manager for one test, then removed."""
    import loram_plugin_llmpruner
    from loram_core import plugins

    plugins.load_plugins()
    if plugins.pm.is_registered(loram_plugin_llmpruner):  # e.g. `pytest --loram-plugin llmpruner` loaded it
        yield
        return
    plugins.pm.register(loram_plugin_llmpruner, name="llmpruner")
    try:
        yield
    finally:
        plugins.pm.unregister(name="llmpruner")
