import sys

import pytest


def pytest_configure(config):
    # Installed third-party loram plugins stay out of the tests (see loram_core.plugins); this one is
    # registered explicitly by the ``bnb`` fixture below.
    sys._called_from_test = True


@pytest.fixture(scope="session", autouse=True)
def _loram_home(tmp_path_factory):
    # runs made by the tests never touch the user's loram home (adapter registry)
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAM_HOME", str(tmp_path_factory.mktemp("loram-home")))
    yield
    mp.undo()


@pytest.fixture
def bnb():
    """The plugin registered for one test, as its entry point would register it, and gone after."""
    import loram_plugin_bnb
    from loram_core import plugins

    plugins.load_plugins()
    plugins.pm.register(loram_plugin_bnb, name="bnb")
    try:
        yield loram_plugin_bnb
    finally:
        plugins.pm.unregister(name="bnb")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny random GQA Llama (hidden 64: whole bitsandbytes blocks of 64) and a small repetitive text."""
    from loram_core.testing.tiny import write_tiny_inputs

    return write_tiny_inputs(tmp_path_factory.mktemp("inputs"))

