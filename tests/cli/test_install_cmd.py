"""``loram install`` / ``loram uninstall``: pip in loram's own environment; the pip runner is replaced, no network."""

import sys

import pytest

from loram_core.cli import install_cmd
from loram_core.cli.main import main


@pytest.fixture
def pip_calls(monkeypatch):
    calls = []

    def fake_pip(args):
        calls.append(list(args))
        return 0

    monkeypatch.setattr(install_cmd, "run_pip", fake_pip)
    return calls


def test_install_passes_names_and_flags_to_pip(pip_calls):
    assert main(["install", "loram-plugin-wanda", "loram-plugin-bnb"]) == 0
    assert main(["install", "-U", "--force-reinstall", "--no-cache-dir", "--pre", "loram-plugin-wanda"]) == 0
    assert main(["install", "-e", "examples/loram-plugin-wanda"]) == 0
    assert pip_calls == [
        ["install", "loram-plugin-wanda", "loram-plugin-bnb"],
        ["install", "--upgrade", "--force-reinstall", "--no-cache-dir", "--pre", "loram-plugin-wanda"],
        ["install", "--editable", "examples/loram-plugin-wanda"],
    ]


def test_uninstall_asks_pip_unless_yes(pip_calls):
    assert main(["uninstall", "loram-plugin-wanda"]) == 0
    assert main(["uninstall", "-y", "loram-plugin-wanda", "loram-plugin-bnb"]) == 0
    assert pip_calls == [["uninstall", "loram-plugin-wanda"], ["uninstall", "--yes", "loram-plugin-wanda", "loram-plugin-bnb"]]


def test_install_without_a_name_is_bad_input(pip_calls, capsys):
    assert main(["install"]) == 2
    assert "name at least one package" in capsys.readouterr().err
    assert pip_calls == []


def test_pip_failure_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setattr(install_cmd, "run_pip", lambda args: 1)
    assert main(["install", "loram-plugin-nope"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "loram: error: pip install failed (exit status 1); its message is above"


def test_pip_runs_with_the_interpreter_loram_runs_in(monkeypatch):
    seen = []
    monkeypatch.setattr(install_cmd.subprocess, "call", lambda argv: seen.append(argv) or 0)
    assert install_cmd.run_pip(["install", "loram-plugin-wanda"]) == 0
    assert seen == [[sys.executable, "-m", "pip", "install", "loram-plugin-wanda"]]
