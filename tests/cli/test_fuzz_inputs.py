"""Property-based fuzzing (hypothesis, fixed budget and seed): random and mutated plans and recipes either load
into a valid object or raise the project's own error type, never anything else."""

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loram_core.errors import LoramError
from loram_core.lifecycle.settings import FIELDS, load_recipe, make_settings
from loram_core.plan import MaskEntry, ModelFingerprint, PrunePlan, PrunerInfo, SliceEntry
from loram_core.plan.serialize import plan_from_bytes, plan_to_bytes

BUDGET = settings(max_examples=150, deadline=None, derandomize=True,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _valid_plan() -> PrunePlan:
    mask = torch.arange(32).view(4, 8) % 4 < 2
    entries = {
        "model.layers.0.mlp.up_proj": SliceEntry(shape=(8, 4), keep_out=[0, 2, 5]),
        "model.layers.0.mlp.down_proj": SliceEntry(shape=(4, 8), keep_in=[0, 2, 5]),
        "model.layers.1.self_attn.q_proj": MaskEntry(mask=mask, pattern="2:4"),
    }
    base = ModelFingerprint("LlamaForCausalLM", "llama", "0123456789abcdef", 1000, "tiny")
    return PrunePlan(base=base, pruner=PrunerInfo("x", "1", {"ratio": 0.5}), pattern="structured", entries=entries)


DOC, TENSORS = plan_to_bytes(_valid_plan())
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _loads_or_plan_error(doc: bytes, tensors: bytes) -> None:
    try:
        plan = plan_from_bytes(doc, tensors, "fuzz")
    except LoramError:
        return
    assert isinstance(plan, PrunePlan)  # what loads is a checked plan (entries validated on construction)


@BUDGET
@given(st.binary(max_size=400), st.binary(max_size=400))
def test_random_bytes_never_escape_as_foreign_errors(doc, tensors):
    _loads_or_plan_error(doc, tensors)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


PATHS = [p for p in _paths(json.loads(DOC)) if p]


@BUDGET
@given(st.sampled_from(PATHS), json_values, st.booleans())
def test_mutated_plan_json_loads_or_raises_plan_error(path, value, delete):
    doc = json.loads(DOC)
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete and isinstance(node, dict):
        node.pop(path[-1])
    else:
        node[path[-1]] = value
    _loads_or_plan_error(json.dumps(doc).encode(), TENSORS)


@BUDGET
@given(st.data())
def test_flipped_or_truncated_tensor_bytes_load_or_raise_plan_error(data):
    raw = bytearray(TENSORS)
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    for _ in range(data.draw(st.integers(0, 6))):
        if raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << data.draw(st.integers(0, 7))
    _loads_or_plan_error(DOC, bytes(raw))


toml_scalars = st.booleans() | st.integers(-10**9, 10**9) | st.floats(allow_nan=False, allow_infinity=False) | \
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=10)
recipe_keys = st.sampled_from(sorted(FIELDS)) | st.text("abcdefghij_", min_size=1, max_size=8)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(v)  # a JSON string is a valid TOML basic string


@BUDGET
@given(st.dictionaries(recipe_keys, toml_scalars | st.lists(st.integers(0, 50), max_size=3), max_size=6),
       st.booleans())
def test_random_recipes_build_settings_or_raise_loram_error(tmp_path_factory, values, under_run):
    lines = ["[run]"] if under_run else []
    for k, v in values.items():
        lines.append(f"{k} = " + ("[" + ", ".join(map(str, v)) + "]" if isinstance(v, list) else _toml_value(v)))
    path = tmp_path_factory.mktemp("recipe") / "r.toml"
    path.write_text("\n".join(lines) + "\n")
    try:
        make_settings(load_recipe(path), source=str(path))
    except LoramError:
        pass


@BUDGET
@given(st.binary(max_size=200))
def test_garbage_recipe_files_raise_loram_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("recipe") / "r.toml"
    path.write_bytes(raw)
    try:
        make_settings(load_recipe(path), source=str(path))
    except LoramError:
        pass


def test_the_unmutated_plan_round_trips():
    assert plan_from_bytes(DOC, TENSORS).equals(_valid_plan())
    with pytest.raises(LoramError):
        plan_from_bytes(DOC[:-20], TENSORS)
