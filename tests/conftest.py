"""What every test under tests/ shares: isolation from the user's installed plugins and loram home, the tiny
inputs, and fixtures that register in-test plugins. Plain helpers are in loram_test_helpers.py, next to this file;
tiny models and the fast flags in loram_core.testing.tiny; ``loram_register`` comes with loram's pytest plugin."""

import os
import sys

import pytest

# Helpers' asserts report like a test's own.
pytest.register_assert_rewrite("loram_test_helpers", "reliability_rows")

ROWS_SEEN: dict[str, dict[str, str]] = {}  # docs/reliability.md rows this session's tests produced


def pytest_configure(config):
    # Keeps installed third-party loram plugins out of test runs (see loram_core.plugins).
    sys._called_from_test = True


def pytest_sessionfinish(session):
    if ROWS_SEEN and os.environ.get("LORAM_WRITE_DOCS"):
        import reliability_rows

        reliability_rows.write(ROWS_SEEN)


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


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """SmolLM2-135M-Instruct's tokenizer and chat template (the real model's, converted once into the cache)."""
    from transformers import AutoTokenizer

    from loram_core.models.smollm2 import ensure_smollm2

    return AutoTokenizer.from_pretrained(ensure_smollm2())


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


@pytest.fixture
def one_line(request, capsys, tmp_path_factory):
    """``one_line(argv, case, code=2)``: ``loram ARGV`` must exit ``code`` with exactly one line on stderr and no
    traceback. The line is returned, and is a row of docs/reliability.md under the test module's section: the
    row must be in the doc as it is (``LORAM_WRITE_DOCS=1`` writes it instead)."""
    import reliability_rows as rows

    from loram_core.cli.main import main

    heading = rows.SECTIONS[request.module.__name__.rsplit(".", 1)[-1]]

    def run(argv, case: str, code: int = 2) -> str:
        capsys.readouterr()
        assert main([str(a) for a in argv]) == code
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in err, err
        row = rows.row(case, code, rows.normalize(lines[0], tmp_path_factory.getbasetemp()))
        if os.environ.get("LORAM_WRITE_DOCS"):
            ROWS_SEEN.setdefault(heading, {})[case] = row
        else:
            assert row in rows.DOC.read_text(), f"docs/reliability.md lacks this row ({rows.REGENERATE}):\n{row}"
        return lines[0]

    return run
