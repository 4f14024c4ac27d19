"""Multi-turn reuse (issue 17): the static embedder's per-turn sums give the uncached vectors
and scores bit for bit, on real conversations, and a conversation's next request embeds only
its new turn."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from router.policy import ClassifierConfig
from router.request.features import extract_features
from router.request.parse import parse_chat_request
from router.scoring import make_scorer
from router.scoring.part_cache import PART_SEPARATOR, PartSums
from router.scoring.static_embedder import StaticEmbedder

from .test_fast_decision import EDGE_CASES, _real_prompts


@pytest.fixture(scope="module")
def conversations(data_dir) -> list[list[dict]]:
    """Conversations of 1-10 turns: real prompts (many languages, code) as user turns and
    GPT-4-Turbo's AlpacaEval answers as assistant turns, some with a system prompt."""
    rng = random.Random(7)
    prompts = _real_prompts(data_dir) + [t for t in EDGE_CASES if "\ud800" not in t]  # a lone surrogate is refused
    rows = json.loads((data_dir / "alpaca_eval" / "results" / "gpt4_1106_preview" / "model_outputs.json").read_text())
    answers = [r["output"] for r in rows]
    out = []
    for i in range(400):
        turns = rng.randint(1, 10)
        messages = [{"role": "system", "content": rng.choice(prompts)}] if i % 5 == 0 else []
        for t in range(turns):
            role = "user" if (turns - t) % 2 == 1 else "assistant"
            messages.append({"role": role, "content": rng.choice(prompts if role == "user" else answers) or "x"})
        out.append(messages)
    return out


def _texts(conversations, **bound) -> list[str]:
    return [extract_features(parse_chat_request({"model": "auto", "messages": m}), **bound).text for m in conversations]


EVERY = {"context_roles": ("system", "user", "assistant"), "context_below_chars": None}


@pytest.mark.parametrize("bound", [{}, {"context_turns": 9, "max_chars": 1500, "context_chars": 1500, **EVERY},
                                   {"context_turns": 4, "max_chars": 100_000, "context_chars": 100_000, **EVERY}])
def test_cached_sums_give_the_same_vectors_bit_for_bit(conversations, bound):
    texts = _texts(conversations, **bound)
    assert sum(PART_SEPARATOR in t for t in texts) > 100
    plain, cached = StaticEmbedder(), StaticEmbedder(part_cache_size=100_000)
    want = plain.encode(texts)
    first = np.vstack([cached.encode([t]) for t in texts])  # one by one: later texts reuse earlier parts
    again = cached.encode(texts)
    assert first.dtype == want.dtype == np.float32
    assert np.array_equal(first, want) and np.array_equal(again, want)
    assert cached.parts.hits > 0


def test_scores_equal_with_and_without_the_turn_cache(conversations):
    texts = _texts(conversations, context_turns=9, context_chars=300, **EVERY)
    plain = make_scorer(ClassifierConfig(cache_size=0, turn_cache_size=0))
    cached = make_scorer(ClassifierConfig(cache_size=0, turn_cache_size=4096))
    want = [plain.score([t])[0] for t in texts]
    assert [cached.score([t])[0] for t in texts] == want
    assert [cached.score([t])[0] for t in texts] == want  # now from the cache
    assert cached.embedder.parts.hits >= len([t for t in texts if t])


def test_next_request_embeds_only_the_new_turn(data_dir):
    prompts = [p for p in _real_prompts(data_dir) if 200 < len(p) < 900][:12]
    embedder = StaticEmbedder(part_cache_size=64)
    messages: list[dict] = []
    added: list[str] = []  # turns added since the previous request: the answer and the new ask
    for i, prompt in enumerate(prompts[:10]):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": prompt})
        added.append(prompt)
        if messages[-1]["role"] != "user":
            continue
        text = extract_features(parse_chat_request({"model": "auto", "messages": messages}), context_turns=9,
                                context_chars=1000, max_chars=1000, context_roles=("user", "assistant"),
                                context_below_chars=None).text
        misses = embedder.parts.misses
        got = embedder.encode([text])
        new_parts = sum(len([p for p in turn.split(PART_SEPARATOR) if p]) for turn in added)
        assert embedder.parts.misses - misses == new_parts or len(text) > 3072
        added = []
        assert np.array_equal(got, StaticEmbedder().encode([text]))


def test_a_text_the_tokenizer_would_cut_is_pooled_whole():
    long_parts = PART_SEPARATOR.join(["; ".join(["x"] * 200)] * 3)  # 1,200 word pieces in under 3,072 characters
    assert len(long_parts) < 3072
    embedder, plain = StaticEmbedder(part_cache_size=8), StaticEmbedder()
    assert np.array_equal(embedder.encode([long_parts]), plain.encode([long_parts]))
    unknown = PART_SEPARATOR.join(["\U0001F600 " * 300, "words here"])  # unknown pieces count toward the cut
    assert np.array_equal(embedder.encode([unknown]), plain.encode([unknown]))


def test_part_sums_is_a_bounded_lru():
    sums = PartSums(2)
    for text in ("a", "b", "c"):
        key, found = sums.get(text)
        assert found is None
        sums.put(key, (np.zeros(2, dtype=np.int32), 1))
    assert len(sums) == 2 and sums.get("a")[1] is None and sums.get("c")[1] is not None
    with pytest.raises(ValueError):
        PartSums(0)
