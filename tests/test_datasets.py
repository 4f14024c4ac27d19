"""Loaders of every labelled set, on the real shared data, and the user JSONL format."""

import json
import re

import pytest

from training.datasets import DATASETS, Example, label_values, load, load_jsonl, parse_names, with_pair
from training.datasets.routerbench import question_block


def _contaminated(data_dir, name):
    path = data_dir / "routellm" / name / "contaminated_prompts.jsonl"
    return {json.loads(line)["eval_prompt"].strip() for line in path.open() if line.strip()}


def test_routellm_counts_and_contamination_dropped(data_dir):
    mmlu, gsm8k = load("mmlu", data_dir), load("gsm8k", data_dir)
    assert len(mmlu) == 12_668 and len({e.group for e in mmlu}) == 49
    assert len(gsm8k) == 1_307 and {e.group for e in gsm8k} == {"gsm8k"}
    for name, rows in (("mmlu", mmlu), ("gsm8k", gsm8k)):
        dropped = _contaminated(data_dir, name)
        assert dropped and not dropped & {e.prompt.strip() for e in rows}
    e = gsm8k[0]
    assert e.weak_model.startswith("mistralai/Mixtral") and e.strong_model == "gpt-4-1106-preview"
    assert set(e.outcomes) == {e.weak_model, e.strong_model} and not e.costs
    # The README's figures: weak about 68% and strong about 81% correct on MMLU.
    assert 0.66 < sum(x.weak for x in mmlu) / len(mmlu) < 0.70
    assert 0.79 < sum(x.strong for x in mmlu) / len(mmlu) < 0.83


@pytest.mark.parametrize("name,n", [("arc", 1470), ("winogrande", 1267), ("mbpp", 427)])
def test_routerbench_tasks(data_dir, name, n):
    rows = load(name, data_dir)
    assert len(rows) == n and {e.group for e in rows} == {"train", "test"}
    e = rows[0]
    assert len(e.outcomes) >= 10 and all(v in (0.0, 1.0) for v in e.outcomes.values())
    assert e.costs["gpt-4-1106-preview"] > e.costs["mistralai/mixtral-8x7b-chat"] > 0
    # The shared few-shot demonstrations are gone: one question per prompt, no solved answers.
    assert len({r.prompt for r in rows}) > 0.95 * len(rows)
    assert not any("Answer:\nA\n" in r.prompt or "Answer:\nB\n" in r.prompt for r in rows)


def test_alpaca_eval_preferences(data_dir):
    rows = load("alpaca_eval", data_dir)
    assert len(rows) == 805 and len({e.group for e in rows}) == 5
    e = rows[0]
    assert e.strong == 0.5 and 0.0 <= e.weak <= 1.0 and len(e.outcomes) > 50
    assert all(0.0 <= v <= 1.0 for v in e.outcomes.values())


def test_question_block_keeps_the_last_block():
    raw = repr(["Q1?\nA) x\nAnswer:\nA\n\nQ2?\nA) y\nAnswer:"])
    assert question_block(raw) == "Q2?\nA) y\nAnswer:"
    assert question_block("['Write a function.']") == "Write a function."


def test_labels_by_hand():
    rows = [Example("p", "s", "g", {"w": w, "s": s}, "w", "s") for w, s in ((0, 1), (1, 1), (1, 0), (0, 0), (0.2, 0.7))]
    assert label_values(rows, "needs_strong").tolist() == [1, 0, 0, 0, 1]
    assert label_values(rows, "weak_wrong").tolist() == [1, 0, 0, 1, 1]
    assert label_values(rows, "gap").tolist() == pytest.approx([1, 0, -1, 0, 0.5])
    with pytest.raises(ValueError):
        label_values(rows, "nope")


def test_with_pair_switches_models(data_dir):
    rows = with_pair(load("arc", data_dir), weak_model="mistralai/mistral-7b-chat")
    assert rows[0].weak_model == "mistralai/mistral-7b-chat" and rows[0].strong_model == "gpt-4-1106-preview"
    with pytest.raises(KeyError):
        with_pair(rows, weak_model="no-such-model")


def test_user_jsonl_loads_the_same_way(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(
        json.dumps({"prompt": "hi", "outcomes": {"small": 1, "big": 1}, "weak": "small", "strong": "big",
                    "costs": {"small": 0.0, "big": 0.002}}) + "\n"
        + json.dumps({"prompt": "integrate x^2", "outcomes": {"small": 0, "big": 1}, "group": "math"}) + "\n"
    )
    rows = load(str(path))
    assert [e.prompt for e in rows] == ["hi", "integrate x^2"]
    assert rows[1].weak_model == "small" and rows[1].needs_strong == 1 and rows[1].group == "math"
    assert rows[0].group == "mine" and rows[0].source == "mine" and rows[0].costs["big"] == 0.002


@pytest.mark.parametrize("line,message", [
    ("not json", "not valid JSON"),
    ('{"outcomes": {"a": 1, "b": 0}, "weak": "a", "strong": "b"}', "'prompt'"),
    ('{"prompt": "x", "outcomes": {"a": 2, "b": 0}, "weak": "a", "strong": "b"}', "in [0, 1]"),
    ('{"prompt": "x", "outcomes": {"a": 1, "b": 0}}', "name the pair"),
    ('{"prompt": "x", "outcomes": {"a": 1}, "weak": "a", "strong": "b"}', "'b' has no outcome"),
])
def test_user_jsonl_errors_name_the_line(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        load_jsonl(path)
    assert "bad.jsonl:1" in str(err.value)


def test_parse_names():
    assert parse_names("mmlu, gsm8k") == ["mmlu", "gsm8k"]
    assert parse_names("all") == list(DATASETS)
    assert parse_names("x/y.jsonl") == ["x/y.jsonl"]
    for bad in ("", "mmlu,nope"):
        with pytest.raises(ValueError):
            parse_names(bad)
