"""The publisher workflow: `loram publish` writes a self-contained folder; `loram run --pruned` trains on it
and refuses an original other than the base it was cut from."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from loram_core.cli.main import main
from loram_core.lifecycle.publish import FingerprintError, check_base, read_published, weights_digest
from loram_core.testing.tiny import save_tiny_model

FAST = ["--steps", "4", "--batch-size", "2", "--seq-len", "32", "--eval-seq-len", "64", "--eval-tokens", "512",
        "--checkpoint-every", "2", "--no-progress", "--no-merge"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("pub")
    model = save_tiny_model(root / "model", gqa=True)
    words = ("king", "queen", "duke", "night", "sea", "crown", "said", "of", "the", "to")
    text = "\n\n".join(" ".join(words[(i * 7 + j * 3) % 10] for j in range(200)) for i in range(40))
    (root / "data.txt").write_text(text)
    return model, root / "data.txt", root


@pytest.fixture(scope="module")
def published(inputs):
    model, data, root = inputs
    run = root / "publisher"
    assert main(["run", "--model", str(model), "--data", str(data), "--pruner", "magnitude", "--ratio", "0.5",
                 "--out", str(run), "--json", *FAST]) == 0
    out = root / "published"
    assert main(["publish", str(run), str(out), "--json"]) == 0
    return run, out


def test_published_folder_is_self_contained(published):
    run, out = published
    card = read_published(out)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "loram_published.json", "plan", "pruned"]
    assert (out / "plan" / "plan.json").read_bytes() == (run / "plan" / "plan.json").read_bytes()
    for name, tensor in load_file(next((run / "pruned").glob("*.safetensors"))).items():
        assert torch.equal(load_file(next((out / "pruned").glob("*.safetensors")))[name], tensor)
    report = json.loads((run / "report.json").read_text())
    assert card["ppl"]["pruned"] == report["ppl"]["pruned"] and card["prune"]["pruner"]["name"] == "magnitude"
    readme = (out / "README.md").read_text()
    for needle in ("base model", "magnitude", "ratio 0.5", "alignment | none", f"{report['ppl']['pruned']:,.2f}"):
        assert needle in readme, needle


def test_run_from_published_folder_trains_the_same_as_the_publisher(published, inputs):
    model, data, root = inputs
    run, out = published
    user = root / "user"
    assert main(["run", "--pruned", str(out), "--model", str(model), "--data", str(data), "--out", str(user),
                 "--json", *FAST]) == 0
    prune = json.loads((user / "stages" / "prune.json").read_text())
    assert prune["published"]["path"] == str(out.resolve())
    report = json.loads((user / "report.json").read_text())
    assert report["pruner"]["name"] == "magnitude"
    # Same plan, weights, data and seed as the publisher's own run: the same adapter, bit for bit.
    a = load_file(run / "adapter" / "adapter_model.safetensors")
    b = load_file(user / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_mismatched_original_is_refused(published, inputs, capsys):
    model, data, root = inputs
    _, out = published
    other = save_tiny_model(root / "other", gqa=True, seed=7)  # same config, other weights
    assert weights_digest(str(other)) != weights_digest(str(model))
    code = main(["run", "--pruned", str(out), "--model", str(other), "--data", str(data),
                 "--out", str(root / "refused"), *FAST])
    assert code == 2
    err = capsys.readouterr().err
    assert "published pruned model" in err and "differs in its weights" in err
    assert not (root / "refused" / "plan").exists()


def test_check_base_names_the_config_difference(published, inputs):
    from loram_core.models.loading import load_config

    model, _, root = inputs
    _, out = published
    card = read_published(out)
    mha = save_tiny_model(root / "mha", gqa=False)
    with pytest.raises(FingerprintError, match="differs in its config"):
        check_base(card, out, load_config(str(mha)), str(mha), str(mha))


def test_publish_refuses_to_overwrite_a_foreign_folder(published, inputs, capsys):
    run, _ = published
    _, _, root = inputs
    foreign = root / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert main(["publish", str(run), str(foreign)]) == 2
    assert (foreign / "notes.txt").read_text() == "mine"
    assert "not a published loram folder" in capsys.readouterr().err


def test_not_a_published_folder(inputs, capsys):
    model, data, root = inputs
    assert main(["run", "--pruned", str(root), "--model", str(model), "--data", str(data),
                 "--out", str(root / "x"), *FAST]) == 2
    assert "is not a published pruned model" in capsys.readouterr().err
