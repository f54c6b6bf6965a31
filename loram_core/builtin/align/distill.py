"""Aligner ``distill``: continual pre-training plus a KL term to the ORIGINAL model's logits, as pruning
peers do (Minitron, Sheared-LLaMA). The original (teacher) runs in eval mode under ``torch.inference_mode()``
on each batch; its log-probabilities live for that batch only."""

from __future__ import annotations

import attrs
import torch
import torch.nn.functional as F

from loram_core.builtin.align.config import DistillConfig
from loram_core.builtin.align.continual_pretrain import ContinualPretrain
from loram_core.errors import LoramError


def kl_to_teacher(student_logits: torch.Tensor, teacher_logp: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(teacher_T || student_T), averaged over token positions.

    ``teacher_logp`` are the teacher's log-softmax at temperature T, ``student_logits`` raw logits.
    """
    student_logp = F.log_softmax(student_logits.float() / temperature, dim=-1)
    kl = F.kl_div(student_logp.flatten(0, -2), teacher_logp.flatten(0, -2), log_target=True, reduction="batchmean")
    return kl * (temperature * temperature)


class DistillObjective:
    """loss = (1 - w) * CE + w * T^2 * KL(teacher || student); records ``ce`` and ``kl`` per step."""

    def __init__(self, teacher: torch.nn.Module, kl_weight: float, temperature: float):
        self.teacher, self.kl_weight, self.temperature = teacher, kl_weight, temperature

    def prepare(self, device, dtype: torch.dtype) -> None:
        self.teacher.to(device=device, dtype=dtype)

    def teacher_logp(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            logits = self.teacher(input_ids=batch, use_cache=False).logits
            logp = F.log_softmax(logits.float() / self.temperature, dim=-1)
            del logits
        # An inference tensor cannot be saved for backward; a clone made outside inference mode can.
        return logp.clone()

    def __call__(self, model: torch.nn.Module, batch: torch.Tensor):
        out = model(input_ids=batch, labels=batch, use_cache=False)
        ce = out.loss
        if self.kl_weight == 0:
            return ce, {"ce": ce.detach()}
        kl = kl_to_teacher(out.logits, self.teacher_logp(batch), self.temperature)
        loss = kl if self.kl_weight == 1 else (1 - self.kl_weight) * ce + self.kl_weight * kl
        return loss, {"ce": ce.detach(), "kl": kl.detach()}


def load_teacher(config: DistillConfig, context, dtype: torch.dtype) -> torch.nn.Module:
    from loram_core.models.loading import load_model

    source = config.teacher or getattr(context, "model_path", None)
    if not source:
        raise LoramError("aligner 'distill' needs the original model as its teacher: the run's model "
                         "(context.model_path) or --aligner-opt teacher=PATH")
    teacher = load_model(source, dtype=dtype).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@attrs.frozen
class Distill(ContinualPretrain):
    name: str = "distill"
    config_cls: type = DistillConfig
    description: str = ("continual pre-training of the pruned model with a KL term to the original model's "
                        "logits (Minitron-style distillation; kl_weight=1 is pure distillation)")

    def objective(self, config: DistillConfig, context):
        if config.kl_weight == 0:
            return DistillObjective(torch.nn.Identity(), 0.0, config.temperature)
        teacher = load_teacher(config, context, torch.float32)  # cast to the student's dtype in prepare()
        vocab = teacher.get_input_embeddings().num_embeddings
        expected = getattr(context.original_config, "vocab_size", vocab)
        if vocab != expected:
            raise LoramError(f"aligner 'distill': the teacher's vocabulary ({vocab}) differs from the model's "
                             f"({expected})")
        return DistillObjective(teacher, config.kl_weight, config.temperature)
