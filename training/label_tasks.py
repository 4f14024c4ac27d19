"""Questions with gold answers for labelling the local model's own answers, and their graders.

Each task turns a shared-data set into :class:`LabelItem` rows: the chat turns sent to the
local tier (zero-shot, one instruction that names the answer format), the gold answer(s) and
the grader that decides whether an answer is right. Pure apart from reading the files; a new
task is one loader function and a line in :data:`TASKS`.

Graders (:func:`grade`):
- ``letter``: the first choice letter the answer gives (``B``, ``(B)``, ``B)``) equals the gold;
- ``choice``: the first of the task's label words that appears in the answer equals the gold
  (synonyms map to a label, e.g. "tech" -> "science/tech");
- ``contains``: the SQuAD-normalised answer equals, or contains as whole words, any gold
  answer (the usual accuracy for short generative QA such as NQ-open);
- ``number``: the last number in the answer equals the gold number (GSM8K's ``#### n``).

Sources and formats: ``../shared/data/README.md``. Items are a seeded shuffle of each set,
so ``--limit N`` takes the same N items on every run and a resumed run continues them.
"""

from __future__ import annotations

import ast
import csv
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.cascade.signals import normalize_answer

__all__ = ["LabelItem", "TASKS", "load_items", "grade", "extract_letter", "extract_choice", "last_number"]


@dataclass(frozen=True, slots=True)
class LabelItem:
    """One question to label.

    Attributes:
        id: stable id, ``<task>:<source id>``.
        task: task name (a key of :data:`TASKS`).
        messages: OpenAI chat turns sent to the tier.
        gold: accepted answers (one for letters, labels and numbers; several for QA).
        grader: ``letter``, ``choice``, ``contains`` or ``number``.
        max_tokens: completion-token cap for this task (tokens).
        choices: for ``choice``: label -> words that mean it (lower case).
        recorded: a strong model's recorded outcome on the same question, where the shared
            data has one: ``{"model": ..., "correct": 0|1, "cost_usd": float|None}``
            (GPT-4-1106-preview from RouteLLM for MMLU/GSM8K, from RouterBench for
            ARC/Winogrande); None elsewhere.
    """

    id: str
    task: str
    messages: list[dict[str, Any]]
    gold: tuple[str, ...]
    grader: str
    max_tokens: int = 32
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)
    recorded: dict[str, Any] | None = None


_GPT4 = "gpt-4-1106-preview"


def _truthy(value: str | None) -> int | None:
    v = str(value or "").strip().lower()
    if v in ("true", "1", "1.0"):
        return 1
    if v in ("false", "0", "0.0"):
        return 0
    return None


def _routellm_outcomes(path: Path) -> dict[str, int]:
    """RouteLLM prompt (whitespace-normalised) -> GPT-4's correctness."""
    out: dict[str, int] = {}
    if not path.is_file():
        return out
    csv.field_size_limit(10_000_000)
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            v = _truthy(row.get(_GPT4))
            if v is not None:
                out[" ".join(row["prompt"].split())] = v
    return out


def _user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


_LETTER_FIRST = re.compile(r"^\W*\(?([A-E])(?:\)|\.|:|\s|$)")
_LETTER_ANY = re.compile(r"(?:answer is|answer:|^|\s|\()\(?([A-E])(?:\)|\.|:|,|\s|$)")


def extract_letter(answer: str) -> str | None:
    """The choice letter an answer gives: a leading ``B``/``(B)``/``B)``, else the first
    standalone capital letter A-E (e.g. "The answer is C."); None when there is none."""
    head = answer.strip()
    m = _LETTER_FIRST.match(head)
    if m:
        return m.group(1)
    m = _LETTER_ANY.search(head)
    return m.group(1) if m else None


def extract_choice(answer: str, choices: dict[str, tuple[str, ...]]) -> str | None:
    """The label whose word appears first in the answer (whole words, case-insensitive)."""
    text = answer.lower()
    best: tuple[int, str] | None = None
    for label, words in choices.items():
        for w in words:
            m = re.search(rf"(?<![\w/]){re.escape(w)}(?![\w/])", text)
            if m and (best is None or m.start() < best[0]):
                best = (m.start(), label)
    return best[1] if best else None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def last_number(text: str) -> str | None:
    """The last number in ``text``, commas removed and a trailing ``.0`` dropped."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    value = found[-1].replace(",", "").rstrip(".")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value


def grade(item: LabelItem, answer: str) -> bool:
    """Whether ``answer`` is right for ``item`` (see the module docstring for each grader).

    Raises:
        ValueError: an unknown grader.
    """
    if item.grader == "letter":
        return extract_letter(answer) == item.gold[0]
    if item.grader == "choice":
        return extract_choice(answer, item.choices) == item.gold[0]
    if item.grader == "number":
        return last_number(answer.split("####")[-1]) == item.gold[0]
    if item.grader == "contains":
        said = f" {normalize_answer(answer)} "
        return any(g and (said.strip() == g or f" {g} " in said) for g in (normalize_answer(x) for x in item.gold))
    raise ValueError(f"unknown grader {item.grader!r}")


# -- tasks ----------------------------------------------------------------------------------


def _sst2(root: Path) -> list[LabelItem]:
    items = []
    for i, line in enumerate((root / "slm_tasks/sst2/stsa.binary.dev").read_text(encoding="utf-8").splitlines()):
        if not line.strip():
            continue
        label, text = line.split(" ", 1)
        items.append(LabelItem(
            f"sst2:{i}", "sst2",
            _user(f"Review: {text.strip()}\nIs the sentiment of this movie review positive or negative? "
                  "Answer with one word."),
            ("positive" if label == "1" else "negative",), "choice", 8,
            {"positive": ("positive",), "negative": ("negative",)}))
    return items


_AG_LABELS = {"1": "world", "2": "sports", "3": "business", "4": "science/tech"}
_AG_WORDS = {"world": ("world", "politics"), "sports": ("sports", "sport"), "business": ("business", "economy"),
             "science/tech": ("science/tech", "science", "technology", "tech")}


def _ag_news(root: Path) -> list[LabelItem]:
    items = []
    with (root / "slm_tasks/ag_news/test.csv").open(encoding="utf-8", newline="") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            body = row["Description"].replace("\\", " ")
            items.append(LabelItem(
                f"ag_news:{i}", "ag_news",
                _user(f"Article: {row['Title']}. {body}\nWhich topic is this news article about: World, Sports, "
                      "Business, or Science/Tech? Answer with the topic only."),
                (_AG_LABELS[row["Class Index"]],), "choice", 8, _AG_WORDS))
    return items


_TREC_WORDS = {"ABBR": ("abbreviation",), "ENTY": ("entity", "thing"), "DESC": ("description", "definition"),
               "HUM": ("human", "person"), "LOC": ("location", "place"), "NUM": ("number", "numeric")}


def _trec(root: Path) -> list[LabelItem]:
    items = []
    for i, line in enumerate((root / "slm_tasks/trec/test.txt").read_text(encoding="latin-1").splitlines()):
        if not line.strip():
            continue
        label, question = line.split(" ", 1)
        items.append(LabelItem(
            f"trec:{i}", "trec",
            _user(f"Question: {question.strip()}\nWhat kind of answer does this question ask for: abbreviation, "
                  "entity, description, human, location, or number? Answer with one word."),
            (label.split(":")[0],), "choice", 8, _TREC_WORDS))
    return items


def _boolq(root: Path) -> list[LabelItem]:
    items = []
    with (root / "slm_tasks/boolq/val.jsonl").open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            gold = "yes" if str(row["label"]).lower() == "true" else "no"
            items.append(LabelItem(
                f"boolq:{row.get('idx', i)}", "boolq",
                _user(f"Passage: {row['passage']}\nQuestion: {row['question']}?\nAnswer yes or no."),
                (gold,), "choice", 8, {"yes": ("yes", "true"), "no": ("no", "false")}))
    return items


def _nq_open(root: Path) -> list[LabelItem]:
    items = []
    with (root / "slm_tasks/nq_open/NQ-open.dev.jsonl").open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            items.append(LabelItem(
                f"nq_open:{i}", "nq_open",
                _user(f"Answer the question in a few words.\nQuestion: {row['question']}?"),
                tuple(row["answer"]), "contains", 24))
    return items


def _xquad(root: Path) -> list[LabelItem]:
    items = []
    data = json.loads((root / "slm_tasks/xquad_en/xquad.en.json").read_text(encoding="utf-8"))
    for article in data["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                items.append(LabelItem(
                    f"xquad:{qa['id']}", "xquad",
                    _user(f"Passage: {para['context']}\nQuestion: {qa['question']}\n"
                          "Answer with a short phrase copied from the passage."),
                    tuple(a["text"] for a in qa["answers"]), "contains", 24))
    return items


def _mmlu(root: Path) -> list[LabelItem]:
    items = []
    csv.field_size_limit(10_000_000)
    for path in sorted((root / "mmlu/test").glob("*_test.csv")):
        subject = path.name[: -len("_test.csv")]
        strong = _routellm_outcomes(root / f"routellm/mmlu/responses/mmlu_{subject}.csv")
        with path.open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                choices = "\n".join(f"{'ABCD'[k]}. {row[f'choice{k}']}" for k in range(4))
                key = " ".join(f"{row['question']}\n{choices}\nAnswer:".split())
                rec = {"model": _GPT4, "correct": strong[key], "cost_usd": None} if key in strong else None
                items.append(LabelItem(
                    f"mmlu:{subject}:{i}", "mmlu",
                    _user(f"{row['question']}\n{choices}\nAnswer with the letter of the correct choice only."),
                    ("ABCD"[int(row["answer"])],), "letter", 8, recorded=rec))
    return items


def _routerbench(task: str, file_task: str) -> Callable[[Path], list[LabelItem]]:
    def load(root: Path) -> list[LabelItem]:
        from .datasets.routerbench import question_block

        csv.field_size_limit(10_000_000)
        items = []
        for split in ("train", "test"):
            with (root / f"routerbench/{file_task}_{split}.csv").open(encoding="utf-8", newline="") as fh:
                for i, row in enumerate(csv.DictReader(fh)):
                    gold = _routerbench_gold(row)
                    if gold is None:
                        continue
                    ok = _truthy(row.get(_GPT4))
                    cost = row.get(f"{_GPT4}|total_cost")
                    rec = {"model": _GPT4, "correct": ok, "cost_usd": float(cost) if cost else None} \
                        if ok is not None else None
                    items.append(LabelItem(f"{task}:{split}:{row.get('sample_id') or i}", task,
                                           _user(question_block(row["prompt"])), (gold,), "letter", 8, recorded=rec))
        return items

    return load


def _routerbench_gold(row: dict[str, str]) -> str | None:
    """RouterBench stores correctness, not the gold letter: take the letter of a model whose
    answer is marked correct (GPT-4 first)."""
    models = sorted((k.split("|")[0] for k in row if k.endswith("|model_response")),
                    key=lambda m: m != "gpt-4-1106-preview")
    for model in models:
        if str(row.get(model, "")).strip() in ("1", "1.0"):
            raw = row.get(f"{model}|model_response") or ""
            try:
                parsed = ast.literal_eval(raw)
                raw = " ".join(map(str, parsed)) if isinstance(parsed, list) else str(parsed)
            except (ValueError, SyntaxError):
                pass
            letter = extract_letter(raw)
            if letter:
                return letter
    return None


_BBH_TASKS = {
    "boolean_expressions": {"true": ("true",), "false": ("false",)},
    "sports_understanding": {"yes": ("yes", "plausible"), "no": ("no", "implausible")},
    "navigate": {"yes": ("yes",), "no": ("no",)},
    "web_of_lies": {"yes": ("yes",), "no": ("no",)},
    "causal_judgement": {"yes": ("yes",), "no": ("no",)},
    "formal_fallacies": {"valid": ("valid",), "invalid": ("invalid",)},
}


def _bbh(root: Path) -> list[LabelItem]:
    items = []
    for name, choices in _BBH_TASKS.items():
        data = json.loads((root / f"bbh/bbh/{name}.json").read_text(encoding="utf-8"))
        for i, ex in enumerate(data["examples"]):
            items.append(LabelItem(
                f"bbh:{name}:{i}", "bbh",
                _user(f"{ex['input']}\nAnswer with only the final answer."),
                (ex["target"].strip().lower(),), "choice", 8, choices))
    return items


def _gsm8k(root: Path) -> list[LabelItem]:
    items = []
    strong = _routellm_outcomes(root / "routellm/gsm8k/gsm8k_responses.csv")
    with (root / "routellm/gsm8k/test.jsonl").open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            row = json.loads(line)
            gold = last_number(row["answer"].split("####")[-1])
            key = " ".join(row["question"].split())
            rec = {"model": _GPT4, "correct": strong[key], "cost_usd": None} if key in strong else None
            items.append(LabelItem(
                f"gsm8k:{i}", "gsm8k",
                _user(f"{row['question']}\nSolve it step by step, then write the final answer as '#### <number>'."),
                (gold or "",), "number", 256, recorded=rec))
    return items


TASKS: dict[str, Callable[[Path], list[LabelItem]]] = {
    "sst2": _sst2, "ag_news": _ag_news, "trec": _trec, "boolq": _boolq, "nq_open": _nq_open,
    "xquad": _xquad, "mmlu": _mmlu, "arc": _routerbench("arc", "arc_challenge"),
    "winogrande": _routerbench("winogrande", "winograde"), "bbh": _bbh, "gsm8k": _gsm8k,
}
"""Task name -> loader(data root). ``slm_tasks`` sets, MMLU, RouterBench ARC-Challenge and
Winogrande, six yes/no-style BIG-Bench-Hard tasks and GSM8K."""


def load_items(names: Sequence[str], root: Path, limit: int | None = None, seed: int = 0) -> list[LabelItem]:
    """Items of the named tasks: each task shuffled with ``seed`` and cut to ``limit`` items.

    Raises:
        ValueError: an unknown task name.
        FileNotFoundError: a data file is missing.
    """
    out: list[LabelItem] = []
    for name in names:
        if name not in TASKS:
            raise ValueError(f"unknown label task {name!r}; expected one of {', '.join(TASKS)}")
        items = TASKS[name](root)
        random.Random(f"{seed}:{name}").shuffle(items)
        out.extend(items[:limit] if limit else items)
    return out
