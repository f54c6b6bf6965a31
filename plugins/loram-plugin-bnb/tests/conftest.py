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
    from loram_core.testing.tiny import save_tiny_model

    root = tmp_path_factory.mktemp("inputs")
    model = save_tiny_model(root / "model", gqa=True)
    lines = [f"{w} said the {v} to the {w} of {v}." for w in ("king", "queen", "duke") for v in ("night", "sea", "crown")]
    (root / "data.txt").write_text("\n\n".join(" ".join(lines[(i + j) % 9] for j in range(30)) for i in range(60)))
    return model, root / "data.txt"


FAST = ["--steps", "6", "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "1024",
        "--checkpoint-every", "3", "--no-progress"]
