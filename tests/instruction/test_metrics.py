"""``metrics.jsonl`` (and TensorBoard event files with ``--report-to tensorboard``): one line per step with loss,
lr, grad norm and tokens, the validation loss every ``--eval-every`` steps; a resumed run keeps the lines of the
steps that made its adapter."""

import json

from loram_core.cli.main import main
from loram_core.testing.tiny import FAST_FLAGS


def lines(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_every_step_is_logged_with_validation_every_n_steps(inputs, tmp_path, capsys):
    model, data = inputs
    run = tmp_path / "run"
    assert main(["run", "--model", str(model), "--data", str(data), "--out", str(run), "--layers", "1:7", "--no-merge",
                 *FAST_FLAGS, "--eval-every", "2", "--report-to", "tensorboard", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    logged = lines(run)
    assert [m["step"] for m in logged] == [1, 2, 3, 4, 5, 6]
    assert [m["loss"] for m in logged] == report["losses"]  # the same numbers as the train record
    assert all(m["grad_norm"] > 0 and m["tokens"] == 2 * 32 for m in logged)  # 2 rows of 32 tokens a step
    assert logged[0]["lr"] == 0 and all(m["lr"] > 0 for m in logged[1:])  # linear warm-up from 0
    assert [m["step"] for m in logged if "val_loss" in m] == [2, 4, 6]
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4, 5, 6]
    assert [e.step for e in events.Scalars("train/val_loss")] == [2, 4, 6]


def test_a_resumed_run_keeps_the_lines_of_the_steps_before_it(inputs, tmp_path, capsys):
    import shutil

    model, data = inputs
    run = tmp_path / "run"
    flags = ["run", "--model", str(model), "--data", str(data), "--out", str(run), "--layers", "1:7", "--no-merge",
             *FAST_FLAGS, "--json"]
    assert main(flags) == 0
    whole = lines(run)
    # as after a kill at step 5: the checkpoint of step 3 is the newest, metrics.jsonl has a torn last line
    shutil.rmtree(run / "checkpoints" / "step-6")
    shutil.rmtree(run / "adapter-pruned")
    (run / "stages" / "train.json").unlink()
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "lo')
    assert main(flags) == 0
    capsys.readouterr()
    again = lines(run)
    assert [m["step"] for m in again] == [1, 2, 3, 4, 5, 6]
    assert [m["loss"] for m in again] == [m["loss"] for m in whole]  # resumed at step 3, the same steps again
