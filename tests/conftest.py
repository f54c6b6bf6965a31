"""What every test under tests/ shares: isolation from the user's installed plugins and loram home, the tiny
inputs, and fixtures that register in-test plugins. Plain helpers are in loram_test_helpers.py, next to this file;
tiny models and the fast flags in loram_core.testing.tiny; ``loram_register`` comes with loram's pytest plugin."""

import sys

import pytest

# Helpers' asserts report like a test's own.
pytest.register_assert_rewrite("loram_test_helpers")


def pytest_configure(config):
    # Keeps installed third-party loram plugins out of test runs (see loram_core.plugins).
    sys._called_from_test = True


@pytest.fixture(scope="session", autouse=True)
def _loram_home(tmp_path_factory):
    # Session scope, so module-scoped fixtures that run `loram run` never write to the user's adapter registry.
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAM_HOME", str(tmp_path_factory.mktemp("loram-home")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny GQA model folder and a small text file, shared by one test module: (model, data)."""
    from loram_core.testing.tiny import write_tiny_inputs

    return write_tiny_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.fixture
def stage_plugins():
    """A quantizer (``grid``) and an aligner (``scale-norm``) registered with the core for one test."""
    from loram_core import plugins
    from loram_test_helpers import StagePlugins

    plugins.load_plugins()
    plugins.pm.register(StagePlugins(), name="StagePlugins")
    try:
        yield
    finally:
        plugins.pm.unregister(name="StagePlugins")
