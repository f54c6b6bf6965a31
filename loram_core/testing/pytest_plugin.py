"""loram's pytest plugin (entry point ``pytest11``: ``loram``): the conformance suite for any installed plugin.

    pytest --loram-plugin wanda                 # your tests, plus one conformance test per rule, model and case
    pytest --loram-plugin bnb --loram-plugin llmpruner --pyargs loram_core.testing.conformance.suite

``NAME`` is a plugin registered with the core (``loram_core.builtin.magnitude``), an entry point of the
``loram`` group (it is loaded, and everything it registers is checked) or one registered pruner, quantizer,
aligner, recoverer or task evaluator (``magnitude``, ``nf4``). ``--loram-option KEY=VALUE`` sets a config field of every
checked plugin whose config has it (an aligner's data file, say); ``--loram-family llama-gqa`` checks pruners
on one tiny model instead of all three. Without ``--loram-plugin`` the plugin only adds its options and
fixtures. Also loadable with ``-p loram_core.testing.pytest_plugin``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

SUITE = Path(__file__).with_name("conformance") / "suite.py"


def pytest_addoption(parser) -> None:
    group = parser.getgroup("loram", "loram plugin conformance suite")
    group.addoption("--loram-plugin", action="append", default=[], metavar="NAME",
                    help="run the conformance suite on this loram plugin, entry point, or pruner/quantizer/aligner/"
                         "recoverer name (repeatable)")
    group.addoption("--loram-option", action="append", default=[], metavar="KEY=VALUE",
                    help="config option for every checked plugin whose config has the field KEY (repeatable)")
    group.addoption("--loram-family", action="append", default=[], metavar="NAME",
                    help="check pruners on this tiny model only: llama-mha, llama-gqa, qwen2-gqa, qwen3-gqa, gemma3-gqa (repeatable; default all)")


TARGETS = pytest.StashKey[list]()


@pytest.hookimpl(trylast=True)  # after conftests' pytest_configure, which may register plugins to check
def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "loram_conformance: a test of loram's plugin conformance suite")
    if not config.getoption("loram_plugin"):
        return
    config.stash[TARGETS] = _resolve_targets(config)
    # The suite is a test module inside the package: collected only when asked for, as if named on the command line.
    if not any(_same_file(arg, SUITE) for arg in config.args):
        config.args.append(str(SUITE))


def _resolve_targets(config) -> list:
    """``[(Target, options)]`` for every name given; a bad name or family is a usage error, before collection."""
    import attrs

    from loram_core.errors import LoramError
    from loram_core.testing.conformance.harness import family
    from loram_core.testing.conformance.targets import resolve

    try:
        for name in config.getoption("loram_family"):
            family(name)
        targets = []
        for name in config.getoption("loram_plugin"):
            targets += [t for t in resolve(name) if t not in targets]
        options = loram_options(config)
    except LoramError as exc:
        raise pytest.UsageError(str(exc)) from None

    def known(target) -> set:
        cls = getattr(target.obj, "config_cls", None)  # protocols.Recoverer has no config
        return set(attrs.fields_dict(cls)) if cls is not None else set()

    return [(t, {k: v for k, v in options.items() if k in known(t)}) for t in targets]


def _same_file(arg: str, path: Path) -> bool:
    candidate = Path(arg.split("::", 1)[0])
    try:
        return candidate.exists() and candidate.resolve() == path.resolve()
    except OSError:
        return False


def loram_options(config) -> dict:
    """``--loram-option`` values, parsed like the CLI's ``--pruner-opt``."""
    from loram_core.cli.flags import parse_options

    return parse_options(config.getoption("loram_option"), "--loram-option")


@pytest.fixture
def loram_register():
    """``loram_register(plugin, name)`` registers a plugin (module or object with hookimpls) with the core for
    one test; it is unregistered afterwards, whatever the test did."""
    from loram_core import plugins

    names = []
    broken_before = dict(plugins.broken)

    def register(plugin, name: str):
        plugins.load_plugins()
        plugins.pm.register(plugin, name=name)
        names.append(name)
        return plugin

    yield register
    for name in reversed(names):
        if plugins.pm.get_plugin(name) is not None:
            plugins.pm.unregister(name=name)
    # a plugin the test registered and that failed is reported as broken: that report ends with the test
    plugins.broken.clear()
    plugins.broken.update(broken_before)


@pytest.fixture(scope="session")
def loram_tiny_models(tmp_path_factory):
    """``{family name: saved tiny model folder}`` for each family of ``harness.FAMILIES`` (built once per session)."""
    from loram_core.testing.conformance.harness import FAMILIES

    root = tmp_path_factory.mktemp("loram-tiny-models")
    return {fam.name: fam.save(root) for fam in FAMILIES}
