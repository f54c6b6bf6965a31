"""`loram generate` / `loram chat`: the original model loaded once, registered adapters attached and switched."""

import io
import json
import re

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from loram_core.adapters import AdapterStore, register_path
from loram_core.cli.main import main
from loram_core.infer import GenerationSettings, InferenceSession, generate
from loram_core.infer.generate import encode, generation_config
from loram_core.models.loading import load_tokenizer
from loram_core.testing.tiny import save_tiny_model
from loram_test_helpers import error_line, external_adapter

PROMPT = "the king said"
NEW = 12
VOCAB = 101  # the tiny character tokenizer's size, so every generated id decodes to text


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny original model and two registered adapters for it, in a registry of their own."""
    root = tmp_path_factory.mktemp("gen")
    model = save_tiny_model(root / "model", vocab_size=VOCAB)
    mp = pytest.MonkeyPatch()
    mp.setenv("LORAM_HOME", str(root / "home"))
    for name, seed in (("a", 1), ("b", 2)):
        register_path(external_adapter(root / name, seed=seed, vocab_size=VOCAB), name=name, model=str(model))
    yield model, root
    mp.undo()


@pytest.fixture
def home(setup, monkeypatch):
    model, root = setup
    monkeypatch.setenv("LORAM_HOME", str(root / "home"))
    return model, root


def alone(model_dir, adapter_dir):
    """Reference tokens: a fresh original model with one adapter, through stock PEFT and generate."""
    tok = load_tokenizer(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir).eval()
    ids = tok(PROMPT, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW,
                             do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
    return out[0, ids.shape[1]:].tolist()


def test_two_adapters_in_one_session_give_the_tokens_of_each_adapter_alone(home):
    model, root = home
    store = AdapterStore()
    session = InferenceSession(str(model))
    weights = session.model.get_input_embeddings().weight
    for name in ("a", "b"):
        session.attach(store.get(name))
    settings = GenerationSettings(max_new_tokens=NEW)
    got = {}
    for label in ("a", "b", None, "b", "a"):  # switch back and forth: nothing is reloaded or merged
        session.use(label)
        got.setdefault(session.label, []).append(generate(session, PROMPT, settings).new_tokens)
    assert got["a"][0] == got["a"][1] == alone(model, root / "a")
    assert got["b"][0] == got["b"][1] == alone(model, root / "b")
    assert got["original"][0] == alone(model, None)
    assert len({tuple(v[0]) for v in got.values()}) == 3  # the adapters do change the output
    assert session.model.get_input_embeddings().weight is weights  # the original was loaded once


def test_generate_cli_streams_and_prints_json(home, capsys):
    model, _ = home
    args = ["generate", "--model", str(model), "--adapter", "a", "--adapter", "b", "--compare-original",
            "--prompt", PROMPT, "--max-new-tokens", str(NEW)]
    assert main([*args, "--json"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["adapter"] for r in results] == ["original", "a", "b"]
    assert all(r["text"] for r in results) and len({r["text"] for r in results}) == 3
    assert main(args) == 0  # streamed: the same texts, each under a rule naming its adapter
    segments = re.split(r"^─+ (original|a|b) ─+\n", capsys.readouterr().out, flags=re.M)
    assert segments == ["", *(x for r in results for x in (r["adapter"], r["text"] + "\n"))]
    assert main(["generate", "--adapter", "a", "--prompt", PROMPT, "--max-new-tokens", str(NEW), "--json"]) == 0
    [only_a] = json.loads(capsys.readouterr().out)  # --model defaults to the adapter's recorded original
    assert (only_a["adapter"], only_a["text"]) == ("a", results[1]["text"])


def test_an_adapter_for_another_model_is_refused_with_both_fingerprints(home, tmp_path, capsys):
    model, _ = home
    other = save_tiny_model(tmp_path / "other", layers=6, vocab_size=VOCAB)
    assert main(["generate", "--model", str(other), "--adapter", "a", "--prompt", PROMPT]) == 2
    line = error_line(capsys)
    expected = AdapterStore().get("a").base
    assert "adapter 'a' was made for" in line and expected.config_hash in line and "refusing to attach it" in line
    assert InferenceSession(str(other)).fingerprint.config_hash in line
    assert main(["generate", "--model", str(model), "--adapter", "nope", "--prompt", PROMPT]) == 2
    assert "no adapter named 'nope'" in error_line(capsys)


def test_chat_reads_stdin_and_switches_adapters(home, monkeypatch, capsys):
    model, _ = home
    assert main(["generate", "--model", str(model), "--adapter", "a", "--adapter", "b", "--compare-original",
                 "--prompt", PROMPT, "--max-new-tokens", "8", "--json"]) == 0
    expected = {r["adapter"]: r["text"] for r in json.loads(capsys.readouterr().out)}
    lines = [PROMPT, "/use b", PROMPT, "/use nope", "/use original", PROMPT, "/exit", PROMPT]
    monkeypatch.setattr("sys.stdin", io.StringIO("\n".join(lines) + "\n"))
    assert main(["chat", "--model", str(model), "--adapter", "a", "--adapter", "b", "--max-new-tokens", "8"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "".join(expected[k] + "\n" for k in ("a", "b", "original"))  # nothing after /exit
    assert "adapter 'nope' is not attached (attached: a, b)" in captured.err


def test_the_chat_template_is_applied_when_the_tokenizer_has_one(home, tmp_path):
    model, _ = home
    tok = load_tokenizer(model)
    messages = [{"role": "user", "content": "hi"}]
    raw = encode(tok, messages, GenerationSettings())
    assert raw[0].tolist() == tok("hi")["input_ids"]  # no template: the text as is
    tok.chat_template = "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}>{% endif %}"
    assert encode(tok, messages, GenerationSettings())[0].tolist() == tok("<user>hi>")["input_ids"]
    assert encode(tok, messages, GenerationSettings(chat_template=False))[0].tolist() == raw[0].tolist()


def test_sampling_is_seeded_and_settings_are_checked(home, capsys):
    model, _ = home
    session = InferenceSession(str(model))
    hot = GenerationSettings(max_new_tokens=NEW, temperature=1.5, seed=3)
    first, again = (generate(session, PROMPT, hot).new_tokens for _ in range(2))
    assert first == again
    assert generate(session, PROMPT, GenerationSettings(max_new_tokens=NEW, temperature=1.5, seed=4)).new_tokens != first
    cfg = generation_config(session, hot)
    assert cfg.do_sample and cfg.temperature == 1.5 and cfg.top_k == 0
    assert not generation_config(session, GenerationSettings()).do_sample
    assert main(["generate", "--model", str(model), "--prompt", PROMPT, "--temperature", "-1"]) == 2
    assert "temperature must be a number in [0.0, inf)" in error_line(capsys)
    assert main(["generate", "--model", str(model), "--prompt", PROMPT, "--temperature", "nan"]) == 2
    assert "temperature must be a number in [0.0, inf), got nan" in error_line(capsys)
