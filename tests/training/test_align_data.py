"""Alignment data: the fortunes alias, data mixtures (parsing, packing, seeded sampling), [align] recipes."""

import pytest
import torch

from loram_core.builtin.align.config import ContinualPretrainConfig, DistillConfig
from loram_core.builtin.align.mixture import Mixture, MixtureData, load_mixture, parse_mixture
from loram_core.configs import build_config
from loram_core.data import load_dataset
from loram_core.data.fortunes import FORTUNES_DIR, load_fortunes, parse_fortunes
from loram_core.errors import LoramError
from loram_core.lifecycle.settings import load_recipe, make_settings
from loram_core.testing.tiny import tiny_tokenizer

needs_fortunes = pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="Debian's fortunes package is not installed")


@needs_fortunes
def test_fortunes_alias_has_three_disjoint_nonempty_splits():
    splits = load_dataset("fortunes")
    assert splits.name == "fortunes"
    parts = [set(splits.split(s)) for s in ("train", "validation", "test")]
    assert all(parts) and all(doc.strip() for p in parts for doc in p)
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    sizes = splits.sizes()
    assert sizes["train"]["chars"] > 1_000_000 and sizes["test"]["docs"] > 20
    assert load_fortunes() == splits  # deterministic


def test_fortunes_reads_text_files_only_and_groups_entries(tmp_path):
    folder = tmp_path / "fortunes"
    folder.mkdir()
    entries = [f"Fortune number {i}, wise and short." for i in range(200)]
    (folder / "wisdom").write_text("\n%\n".join(entries) + "\n%\n")
    (folder / "wisdom.dat").write_bytes(b"\x00\x01binary index")
    (folder / "wisdom.u8").symlink_to(folder / "wisdom")
    (folder / "off").mkdir()
    (folder / "off" / "hidden").write_text("never read\n%\n")
    splits = load_fortunes(folder, doc_chars=300)
    docs = splits.train + splits.validation + splits.test
    assert all("never read" not in d and "binary" not in d for d in docs)
    assert sorted(e for d in docs for e in d.split("\n\n")) == sorted(entries)  # every fortune exactly once
    assert sum(len(d) < 298 for d in docs) <= 1 and len(docs) >= 3  # only a file's last document is short
    assert parse_fortunes("a\n%\n\n%\nb\nc\n%") == ["a", "b\nc"]


def test_missing_fortunes_package_names_the_apt_command(tmp_path):
    with pytest.raises(LoramError, match=r"apt-get install -y fortunes"):
        load_fortunes(tmp_path / "nowhere")


@pytest.mark.parametrize("spec, names, weights", [
    ("fortunes", ("fortunes",), (1.0,)),
    ("fortunes:0.7,shakespeare:0.3", ("fortunes", "shakespeare"), (0.7, 0.3)),
    ("a:3, b:1", ("a", "b"), (0.75, 0.25)),
    ("a,b", ("a", "b"), (0.5, 0.5)),
    ({"fortunes": 1.0}, ("fortunes",), (1.0,)),
    ({"fortunes": 7, "shakespeare": 3}, ("fortunes", "shakespeare"), (0.7, 0.3)),
    ("/data/x:y/corpus.txt", ("/data/x:y/corpus.txt",), (1.0,)),
    ("/data/corpus.txt:2,b:2", ("/data/corpus.txt", "b"), (0.5, 0.5)),
])
def test_mixture_specs(spec, names, weights):
    m = parse_mixture(spec)
    assert m.names == names and m.weights == pytest.approx(weights)
    assert parse_mixture(m.spec()) == m and parse_mixture(m) is m
    assert m.to_json() == pytest.approx(dict(zip(names, weights)))


@pytest.mark.parametrize("spec, message", [
    ("", "empty"),
    ({}, "empty table"),
    ("a,,b", "empty entry"),
    ("a:0", "must be positive"),
    ("a:-1,b:1", "must be positive"),
    ("a:inf", "must be positive"),
    ("a:nan", "must be positive"),
    ("a:lots", "must be a number"),
    (":0.5", "without a dataset name"),
    ("a:1,a:2", "named twice"),
    ({"a": "heavy"}, "must be a number"),
    ({"a": True}, "must be a number"),
    (5, "expected a string"),
])
def test_bad_mixture_specs_are_clear_errors(spec, message):
    with pytest.raises(LoramError, match=f"data mixture: .*{message}"):
        parse_mixture(spec)


def test_configs_from_user_input():
    cfg = build_config(ContinualPretrainConfig, {"data": "a:1,b:3", "frozen": "lm_head", "lr": 1}, owner="aligner 'x'")
    assert cfg.data == Mixture(("a", "b"), (0.25, 0.75)) and cfg.frozen == ("lm_head",) and cfg.lr == 1.0
    assert build_config(ContinualPretrainConfig, {"frozen": ""}, owner="x").frozen == ()
    assert ContinualPretrainConfig().to_dict()["data"] == {"fortunes": 1.0}
    for options, message in [({"optimizer": "adam"}, "optimizer must be one of adamw, sgd"),
                             ({"steps": 0}, "steps must be a positive integer"),
                             ({"token_budget": 0}, "token_budget must be a positive"),
                             ({"stepz": 3}, "unknown option"),
                             ({"data": "a:x"}, "weight after ':' must be a number")]:
        with pytest.raises(LoramError, match=message):
            build_config(ContinualPretrainConfig, options, owner="aligner 'continual-pretrain'")
    assert DistillConfig(kl_weight=0).kl_weight == 0.0
    with pytest.raises(LoramError, match="kl_weight must be a number in"):
        build_config(DistillConfig, {"kl_weight": 1.5}, owner="aligner 'distill'")


def _two_streams(weights=(0.7, 0.3)):
    streams = (torch.full((500,), 1, dtype=torch.long), torch.arange(2, 402, dtype=torch.long))
    return MixtureData(Mixture(("a", "b"), weights), (None, None), streams)


def test_sampling_is_seeded_by_step_and_follows_the_weights():
    data = _two_streams()
    rows, which = data.sample(8, 16, seed=3, step=5)
    again, which_again = data.sample(8, 16, seed=3, step=5)
    assert torch.equal(rows, again) and torch.equal(which, which_again)
    assert not torch.equal(rows, data.sample(8, 16, seed=3, step=6)[0])
    assert not torch.equal(rows, data.sample(8, 16, seed=4, step=5)[0])
    for row, corpus in zip(rows, which):  # a row is a window of its own corpus
        if corpus == 0:
            assert bool((row == 1).all())
        else:
            assert bool((row[1:] - row[:-1] == 1).all()) and int(row.min()) >= 2
    picks = torch.cat([data.sample(16, 4, seed=0, step=s)[1] for s in range(200)])
    assert abs(float((picks == 0).float().mean()) - 0.7) < 0.04


def test_load_mixture_packs_each_train_split_with_eos(tmp_path):
    for name, word in (("one.txt", "alpha"), ("two.txt", "omega")):
        (tmp_path / name).write_text("\n\n".join(f"{word} {i} " * 40 for i in range(30)))
    tok = tiny_tokenizer()
    data = load_mixture(parse_mixture(f"{tmp_path / 'one.txt'}:1,{tmp_path / 'two.txt'}:1"), tok, seq_len=16)
    assert len(data.train) == 2 and all(s.dim() == 1 and s.numel() > 1000 for s in data.train)
    assert all(int((s == tok.eos_token_id).sum()) == len(split.train) for s, split in zip(data.train, data.splits))
    tests = data.test_tokens(tok, eval_tokens=100, seq_len=16)
    assert [n for n, _ in tests] == list(data.mixture.names) and all(t.numel() == 50 for _, t in tests)
    with pytest.raises(LoramError, match="fewer than seq_len"):
        load_mixture(parse_mixture(str(tmp_path / "one.txt")), tok, seq_len=10**6)


def test_recipe_align_table_and_data_mixture(tmp_path):
    recipe = tmp_path / "align.toml"
    recipe.write_text('model = "m"\n[align]\nname = "continual-pretrain"\nsteps = 3\nlr = 1e-4\n'
                      '[align.data]\nfortunes = 0.7\nshakespeare = 0.3\n')
    values = load_recipe(recipe)
    assert values["aligner"] == "continual-pretrain"
    assert values["aligner_options"] == {"steps": 3, "lr": 1e-4, "data": {"fortunes": 0.7, "shakespeare": 0.3}}
    settings = make_settings(values)
    cfg = build_config(ContinualPretrainConfig, settings.aligner_options, owner="aligner")
    assert cfg.data.spec() == "fortunes:0.7,shakespeare:0.3" and cfg.steps == 3
    recipe.write_text('aligner = "distill"\n[aligner_options]\nsteps = 2\n[align]\nkl_weight = 0.5\n')
    values = load_recipe(recipe)
    assert values["aligner"] == "distill" and values["aligner_options"] == {"steps": 2, "kl_weight": 0.5}
    recipe.write_text('aligner = "distill"\n[align]\nname = "continual-pretrain"\n')
    with pytest.raises(LoramError, match="disagree"):
        load_recipe(recipe)
