"""pass@k, the unbiased estimator of the Codex paper (Chen et al. 2021), and its table over problems.

With n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k): the chance that k samples drawn without
replacement contain a passing one. The product form below avoids the huge binomials (docs/tasks.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """1 - C(n-c, k)/C(n, k), computed as 1 - prod(1 - k / i) for i in n-c+1 .. n; 1.0 when n - c < k."""
    if n < 1 or not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs n >= 1, 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def pass_at_k_table(results: Mapping[str, Sequence[bool]], ks: Iterable[int]) -> dict[int, tuple[float, float]]:
    """For each k: (mean pass@k over the problems, its standard error).

    ``results`` maps a task id to the pass/fail of each of its samples. The standard error is the sample
    standard deviation (ddof=1) over problems divided by sqrt(number of problems); 0.0 with one problem.
    Every k must be at most the number of samples of every problem.
    """
    if not results:
        raise ValueError("pass@k needs the results of at least one problem")
    table = {}
    for k in ks:
        scores = []
        for task_id, passed in results.items():
            n = len(passed)
            if k > n:
                raise ValueError(f"pass@{k} needs at least {k} samples, {task_id} has {n}")
            scores.append(pass_at_k(n, sum(bool(p) for p in passed), k))
        mean = float(np.mean(scores))
        stderr = float(np.std(scores, ddof=1) / math.sqrt(len(scores))) if len(scores) > 1 else 0.0
        table[k] = (mean, stderr)
    return table
