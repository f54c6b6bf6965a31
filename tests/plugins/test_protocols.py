"""Each plugin kind's contract is a ``typing.Protocol`` (loram_core.protocols): the built-ins satisfy theirs, the
hooks, docs and conformance suite name them, and optional members are read only as documented."""

import attrs
import pytest

import loram_core
from loram_core import hookspecs, protocols, registry
from loram_core.protocols import PROTOCOLS, Pruner, Quantizer, Recoverer, TaskEvaluator, missing_members, optional_member
from loram_test_helpers import REPO

BUILTIN = "loram_core.builtin."


def builtin_objects():
    return [(kind, name, item.obj) for kind in registry.KINDS for name, item in sorted(registry.collect(kind).items())
            if item.plugin.startswith(BUILTIN)]


def test_every_registry_kind_has_a_protocol_with_its_optional_members():
    assert set(PROTOCOLS) == set(registry.KINDS)
    assert set(protocols.OPTIONAL_MEMBERS) == set(PROTOCOLS.values())


def test_every_kind_but_quantizer_and_evaluator_has_a_built_in():
    # quantizers are loram-plugin-bnb's, task evaluators loram-plugin-lmeval's
    assert {kind for kind, _, _ in builtin_objects()} == set(registry.KINDS) - {"quantizer", "evaluator"}


@pytest.mark.parametrize("kind,name,obj", builtin_objects(), ids=lambda v: v if isinstance(v, str) else "")
def test_built_in_satisfies_its_protocol(kind, name, obj):
    protocol = PROTOCOLS[kind]
    assert isinstance(obj, protocol), f"{kind} '{name}' lacks {missing_members(obj, protocol)}"
    optional = protocols.OPTIONAL_MEMBERS[protocol]
    for member in protocols.required_members(protocol):
        assert member not in optional, f"{member} is both required and optional in {protocol.__name__}"


@pytest.mark.parametrize("module,hook,protocol", [
    ("loram_plugin_bnb", "register_quantizers", Quantizer),
    ("loram_plugin_sparsegpt", "register_pruners", Pruner),
    ("loram_plugin_llmpruner", "register_pruners", Pruner),
    ("loram_plugin_wanda", "register_pruners", Pruner),
    ("loram_plugin_lmeval", "register_task_evaluators", TaskEvaluator),
])
def test_repository_plugins_satisfy_their_protocols(module, hook, protocol):
    mod = pytest.importorskip(module)
    found = []
    getattr(mod, hook)(register=lambda obj, aliases=(): found.append(obj))
    assert found and all(isinstance(obj, protocol) for obj in found), [missing_members(o, protocol) for o in found]


def test_protocols_and_prune_context_are_exported_from_loram_core():
    from loram_core.prune_context import PruneContext
    from loram_core.structured import PruneContext as FromStructured  # where plugins import it from

    assert loram_core.PruneContext is PruneContext is FromStructured
    for protocol in PROTOCOLS.values():
        assert getattr(loram_core, protocol.__name__) is protocol and protocol.__name__ in loram_core.__all__


def test_isinstance_checks_required_members_only():
    @attrs.frozen
    class Minimal:
        name: str = "minimal"

        def fill(self, shape, *, factor, dtype, generator=None):
            raise NotImplementedError

    assert isinstance(Minimal(), Recoverer) and not isinstance(Minimal(), Pruner)
    assert missing_members(Minimal(), Pruner) == ["config_cls", "plan"]


def test_optional_member_gives_the_documented_default_and_rejects_undocumented_names():
    assert optional_member(object(), Pruner, "streaming") is False
    assert optional_member(object(), Pruner, "pattern") == "structured"
    assert optional_member(object(), Pruner, "pattern", None) is None
    assert optional_member(object(), Quantizer, "describe") is None
    with pytest.raises(KeyError):
        optional_member(object(), Pruner, "bits")  # a quantizer's member, not a pruner's


def test_quantizer_bits_prefer_the_config():
    @attrs.frozen
    class Config:
        bits: int = 8

    class WithBits:
        bits = 4

    assert protocols.quantizer_bits(WithBits(), Config()) == 8
    assert protocols.quantizer_bits(WithBits(), object()) == 4
    assert protocols.quantizer_bits(object(), object()) is None


@pytest.mark.parametrize("kind", sorted(registry.KINDS))
def test_hookspecs_and_docs_name_each_protocol(kind):
    protocol = PROTOCOLS[kind].__name__
    hook = getattr(hookspecs, registry.KINDS[kind])
    assert f"loram_core.protocols.{protocol}" in hook.__doc__
    assert f"`{protocol}`" in (REPO / "docs" / "plugins.md").read_text()


def test_conformance_suite_names_the_protocol_a_plugin_breaks(tmp_path):
    from loram_core.testing.conformance import ConformanceError, check_recoverer

    @attrs.frozen
    class NoFill:
        name: str = "no-fill"

    with pytest.raises(ConformanceError, match=r"recoverer 'no-fill': lacks fill of loram_core\.protocols\.Recoverer"):
        check_recoverer(NoFill(), workdir=tmp_path)
