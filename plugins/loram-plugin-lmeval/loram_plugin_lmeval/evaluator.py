"""The ``lm-eval`` task evaluator: lm-evaluation-harness 0.4's ``simple_evaluate`` on the model in memory, over
the suite's local YAMLs and the user's ``--include-path`` (docs/tasks.md). Scores are lm-eval's own: this
module only reads them out of its result dict."""

from __future__ import annotations

import json
from pathlib import Path

import attrs

from loram_core.errors import LoramError
from loram_core.task_eval import GENERATIVE, MULTIPLE_CHOICE, TaskInfo, TaskOptions, TaskScore
from loram_plugin_lmeval.suite import SUITE, SuiteTask

BATCH_SIZE = 8


def _offline() -> None:
    from loram_core.data.records import _quiet_offline  # datasets reads its offline switch at import

    _quiet_offline()


def user_tasks(include_path: str | None) -> list[TaskInfo]:
    """The tasks of the user's YAMLs, from lm-eval's own index of the folder."""
    if include_path is None:
        return []
    _offline()
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=include_path, include_defaults=False)
    infos = []
    for name in manager.all_subtasks:
        entry = manager.task_index[name]
        config = _yaml_config(getattr(entry, "yaml_path", None))
        metrics = config.get("metric_list") or [{}]
        kind = config.get("output_type", "")
        infos.append(TaskInfo(name, "user", MULTIPLE_CHOICE if kind == "multiple_choice" else GENERATIVE
                              if kind == "generate_until" else kind or "unknown", metrics[0].get("metric", "?"),
                              description=str(getattr(entry, "yaml_path", ""))))
    return infos


def _yaml_config(path) -> dict:
    if not path:
        return {}
    from lm_eval.tasks._yaml_loader import load_yaml

    try:
        return load_yaml(Path(path), resolve_func=False) or {}
    except Exception:  # noqa: BLE001 - listing must not fail on one odd YAML; lm-eval reports it when run
        return {}


def headline(result: dict, task: str, preferred: str | None) -> TaskScore:
    """The task's metric (the suite's, else the YAML's first) with its standard error, from lm-eval's results."""
    values = result["results"][task]
    metrics: dict[str, list] = {}
    for key, value in values.items():
        if "," not in key or "_stderr," in key:
            continue
        name, _, filt = key.partition(",")
        stderr = values.get(f"{name}_stderr,{filt}")
        metrics[key] = [float(value), None if stderr in (None, "N/A") else float(stderr)]
    if not metrics:
        raise LoramError(f"lm-eval returned no metric for task '{task}'")
    configured = [m["metric"] for m in (result.get("configs", {}).get(task, {}).get("metric_list") or [])]
    wanted = preferred or (configured[0] if configured else None)
    key = next((k for k in metrics if k.split(",")[0] == wanted), next(iter(metrics)))
    n = result.get("n-samples", {}).get(task, {}).get("effective")
    return TaskScore(metric=key.split(",")[0], value=metrics[key][0], stderr=metrics[key][1], n=int(n or 0),
                     metrics=metrics)


@attrs.frozen
class LmEvalEvaluator:
    name: str = "lm-eval"
    description: str = ("lm-evaluation-harness 0.4 on local task YAMLs: the built-in suite (loram eval "
                        "--list-tasks) and --include-path folders")

    def tasks(self, include_path: str | None) -> list[TaskInfo]:
        from loram_plugin_lmeval.build import ensure_suite

        _, manifest = ensure_suite()
        suite = [TaskInfo(t.name, t.family, t.kind, t.metric, manifest[t.name]["train"], manifest[t.name]["test"],
                          t.description, t.source, t.licence) for t in SUITE]
        names = {t.name for t in SUITE}
        return suite + [t for t in user_tasks(include_path) if t.name not in names]

    def evaluate(self, model, tokenizer, tasks: list[str], options: TaskOptions) -> dict[str, TaskScore]:
        from loram_plugin_lmeval.build import ensure_suite
        from loram_plugin_lmeval.quiet import library_output_to

        folder, _ = ensure_suite()
        _offline()
        suite = {t.name: t for t in SUITE}
        with library_output_to(options.log):
            import lm_eval
            from lm_eval.tasks import TaskManager

            from loram_plugin_lmeval.progress_lm import ProgressLM

            include = [str(folder)] + ([options.include_path] if options.include_path else [])
            manager = TaskManager(include_path=include, include_defaults=False)
            lm = ProgressLM(pretrained=model, tokenizer=tokenizer, batch_size=BATCH_SIZE, advance=options.advance)
            scores = {}
            for task in tasks:  # one call per task: a bar per task, and a result that names one task
                lm.task = task
                result = lm_eval.simple_evaluate(
                    model=lm, tasks=[task], num_fewshot=options.num_fewshot, limit=options.limit,
                    task_manager=manager, log_samples=False, random_seed=options.seed,
                    numpy_random_seed=options.seed, torch_random_seed=options.seed,
                    fewshot_random_seed=options.seed)
                spec: SuiteTask | None = suite.get(task) if options.include_path is None or task in suite else None
                scores[task] = headline(result, task, spec.metric if spec else None)
                if options.log is not None:
                    with open(options.log, "a") as f:
                        f.write(json.dumps({"task": task, "results": result["results"].get(task)}, default=str) + "\n")
        return scores
