"""lm-eval's ``HFLM`` on a model already in memory, reporting its progress to loram's bar instead of tqdm."""

from __future__ import annotations

from typing import Callable

from lm_eval.models.huggingface import HFLM

CHUNK = 64  # requests per call into HFLM: the bar moves between chunks (each request is scored on its own)


class ProgressLM(HFLM):
    """``HFLM(pretrained=<model object>)``; ``task`` names the task whose requests come next."""

    def __init__(self, *args, advance: Callable[[str, int, int], None] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.advance = advance
        self.task = ""

    def _chunked(self, method, requests):
        out = []
        for start in range(0, len(requests), CHUNK):
            out += method(requests[start:start + CHUNK], disable_tqdm=True)
            if self.advance is not None:
                self.advance(self.task, min(start + CHUNK, len(requests)), len(requests))
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return self._chunked(super().loglikelihood, requests)

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        return self._chunked(super().loglikelihood_rolling, requests)

    def generate_until(self, requests, disable_tqdm: bool = False):
        return self._chunked(super().generate_until, requests)
