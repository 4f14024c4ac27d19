"""The fast decision path: the int8 ONNX MiniLM, bounded input, the embedding cache and the
two-stage scorer, with the shipped models and artifacts (no stubs)."""

import asyncio
import sys
import typing

import numpy as np
import pytest

from router.policy import ClassifierConfig, policy_from_dict
from router.scoring.classifier import EmbeddingClassifier
from router.scoring import SCORER_KINDS, make_scorer, scorer_settings
from router.scoring.embedders import EMBEDDER_IDS, embedder_key, make_embedder
from router.scoring.embedding_cache import CachedEmbedder
from router.scoring.protocols import Embedder, EmbeddingScorer
from router.scoring.registry import EMBEDDERS, FAMILY, new_embedder, resolve_embedder
from router.scoring.onnx_embedder import MAX_TOKENS, OnnxEmbedder, onnx_model_dir
from router.scoring.two_stage import StagedScore, TwoStageScorer, score_near

TEXTS = ["What is the capital of France?", "Which city is the capital of France?", "Integrate x^2 dx from 0 to 3.",
         "Write a haiku about autumn leaves."]


def test_int8_model_ships_small_and_is_not_optimised_for_this_cpu():
    import onnx

    path = onnx_model_dir() / "model.onnx"
    assert 15e6 < path.stat().st_size < 30e6  # int8 MiniLM: ~23 MB (fp32 is ~91 MB)
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert "DynamicQuantizeLinear" in ops and ("MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops)
    # Nothing fused by ORT's offline optimiser for one instruction set (those are com.microsoft ops
    # saved from a session); ORT optimises the graph when the session starts on the serving CPU.
    assert not ops & {"Attention", "SkipLayerNormalization", "EmbedLayerNormalization", "FusedMatMul", "NhwcConv"}
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask"]


def test_int8_embeddings_are_unit_vectors_close_to_torch():
    from router.scoring.embedder import Embedder as TorchMiniLM

    got = OnnxEmbedder().encode(TEXTS)
    assert got.shape == (4, 384) and got.dtype == np.float32
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-4)
    ref = TorchMiniLM().encode(TEXTS)
    assert np.min(np.sum(got * ref, axis=1)) > 0.97
    assert got[0] @ got[1] > got[0] @ got[2]
    # one text or four at a time: the same vectors (padding is masked)
    assert np.allclose(OnnxEmbedder().encode(TEXTS[2:3])[0], got[2], atol=1e-3)


def test_default_reads_what_minilm_reads_and_a_bound_takes_both_ends():
    e = make_embedder("minilm-int8")
    assert (e.max_tokens, e.head) == (MAX_TOKENS, None)
    clf = make_scorer(ClassifierConfig(artifact="builtin:difficulty-minilm", max_tokens=64))
    assert (clf.embedder.inner.max_tokens, clf.embedder.inner.head) == (64, 31)  # the cache wraps the policy's


def test_bounded_input_keeps_head_and_tail():
    e = OnnxEmbedder(max_tokens=16, head=4)
    text = " ".join(["alpha"] * 4 + ["beta"] * 30 + ["omega"] * 10)
    ids = e.token_ids([text])[0]
    assert len(ids) == 16 and ids[0] == 101 and ids[-1] == 102
    _, tok = e._load()
    words = tok.decode(ids[1:-1]).split()
    assert words[:4] == ["alpha"] * 4 and words[4:] == ["omega"] * 10
    assert len(OnnxEmbedder().token_ids([text * 20])[0]) == MAX_TOKENS
    with pytest.raises(ValueError):
        OnnxEmbedder(max_tokens=MAX_TOKENS + 1)
    with pytest.raises(ValueError):
        OnnxEmbedder(max_tokens=16, head=15)


def test_cache_embeds_each_text_once_and_stays_bounded():
    inner = make_embedder("static")
    calls = []
    real = inner.encode

    def counting(texts, show_progress_bar=False):
        calls.append(list(texts))
        return real(texts)

    inner.encode = counting
    cache = CachedEmbedder(inner, max_items=3)
    first = cache.encode(TEXTS[:2] + TEXTS[:1])
    assert calls == [TEXTS[:2]] and (cache.hits, cache.misses) == (1, 2)
    again = cache.encode(TEXTS[:2])
    assert len(calls) == 1 and np.array_equal(again, first[:2])
    cache.encode(TEXTS[2:])  # two new texts: the least recently used one is dropped
    assert len(cache) == 3
    cache.encode(TEXTS[:1])
    assert calls[-1] == TEXTS[:1]
    assert cache.dimension == inner.dimension
    with pytest.raises(ValueError):
        CachedEmbedder(inner, max_items=0)


def test_registry_policy_and_families_agree():
    assert EMBEDDERS.keys() == EMBEDDER_IDS.keys() == FAMILY.keys()
    assert make_embedder is new_embedder  # one registry: router.scoring.registry
    assert isinstance(new_embedder("minilm-int8"), Embedder) and isinstance(CachedEmbedder(OnnxEmbedder()), Embedder)
    assert embedder_key({"embedder": EMBEDDER_IDS["minilm-int8"]}) == "minilm-int8"
    runtimes = typing.get_args(typing.get_args(ClassifierConfig.model_fields["embedder"].annotation)[0])
    assert set(runtimes) == {k for k, f in FAMILY.items() if f == "minilm"}
    assert resolve_embedder("minilm", "minilm-int8") == "minilm-int8"
    assert resolve_embedder("minilm-int8", "minilm") == "minilm"
    assert resolve_embedder("static", "minilm-int8") == "static"
    assert resolve_embedder("minilm", None) == "minilm"
    with pytest.raises(ValueError, match="unknown embedder"):
        make_embedder("bert")


def test_default_scorer_runs_without_torch():
    before = "torch" in sys.modules
    clf = make_scorer(ClassifierConfig())
    # the card's embedder (MiniLM's vectors through ONNX Runtime int8, never torch)
    assert clf.embedder_name == resolve_embedder(embedder_key(clf.artifact.card), "minilm-int8") != "minilm"
    scores = clf.score(TEXTS)
    assert all(0 <= s <= 1 for s in scores)
    if not before:
        assert "torch" not in sys.modules


def test_policy_builds_the_two_stage_scorer_through_the_kind_registry():
    two = make_scorer(ClassifierConfig(first_stage="builtin:difficulty-static"))
    assert isinstance(two, TwoStageScorer) and isinstance(two, EmbeddingScorer)  # cache, shadow, verifier share it
    assert two.first.embedder_name == "static" and two.second.embedder_name == resolve_embedder(
        embedder_key(two.artifact.card), "minilm-int8")
    assert two.artifact.card["name"] == "difficulty"  # target_cloud_share reads the default's quantiles
    assert set(SCORER_KINDS) == {"embedding", "rules"}
    assert scorer_settings(ClassifierConfig(kind="rules")) != scorer_settings(ClassifierConfig())


def test_text_feature_artifacts_score_on_int8_embeddings():
    # the default and the previous default (transfer) read embedding + 38 text features; difficulty-static its 23
    for location, n_features in (("builtin", 38), ("builtin:difficulty-minilm", 38), ("builtin:difficulty-static", 23)):
        clf = make_scorer(ClassifierConfig(artifact=location, cache_size=0))
        assert clf.artifact.card["inputs"] == ["embedding", "text_features"]
        assert len(clf.artifact.card["text_features"]) == n_features
        emb = clf.embedder.encode(TEXTS)
        assert np.allclose(clf.score_embeddings(emb, TEXTS), clf.score(TEXTS))


def test_two_stage_sends_only_the_uncertain_band_to_the_transformer():
    static = EmbeddingClassifier("builtin:difficulty-static")
    int8 = EmbeddingClassifier("builtin:difficulty-minilm", embedder_key="minilm-int8")
    s_static, s_int8 = static.score(TEXTS), int8.score(TEXTS)
    items = [(t, 0.5) for t in TEXTS]
    assert [s.stage for s in TwoStageScorer(static, int8, 0.0).score_near(items)] == ["static"] * 4
    everything = TwoStageScorer(static, int8, 1.0).score_near(items)
    assert [s.stage for s in everything] == ["minilm-int8"] * 4
    assert np.allclose([s.score for s in everything], s_int8)
    # a threshold per text: the band is around each one
    near = [(t, s) for t, s in zip(TEXTS, s_static)]
    far = [(t, 1.0 if s < 0.5 else 0.0) for t, s in zip(TEXTS, s_static)]
    assert all(s.stage == "minilm-int8" for s in TwoStageScorer(static, int8, 0.05).score_near(near))
    assert all(s.stage == "static" for s in TwoStageScorer(static, int8, 0.05).score_near(far))
    assert StagedScore(0.4, "static").note() == "decided by the static stage" and StagedScore(0.4).note() == ""
    assert [s.stage for s in score_near(int8, items)] == [None] * 4
    with pytest.raises(ValueError):
        TwoStageScorer(static, int8, 1.5)


def test_routed_reason_names_the_deciding_stage(tmp_path):
    from router.pipeline import Router
    from router.request.parse import parse_chat_request
    from router.store.sqlite import SQLiteStore

    def policy(band):
        return policy_from_dict({
            "tiers": {"local": {"model": "openai/local", "api_key": "sk-x", "api_base": "http://127.0.0.1:9/v1"},
                      "cloud": {"model": "openai/gpt-4o-mini", "api_key": "sk-x", "api_base": "http://127.0.0.1:9/v1"}},
            "routing": {"classifier": {"artifact": "builtin:difficulty-minilm", "first_stage": "builtin:difficulty-static",
                                       "first_stage_band": band}},
            "log": {"path": str(tmp_path / "log.sqlite3")},
        })

    request = parse_chat_request({"model": "auto", "messages": [{"role": "user", "content": TEXTS[2]}]})
    store = SQLiteStore(tmp_path / "log.sqlite3")
    for band, stage in ((0.0, "static"), (1.0, "minilm-int8")):
        router = Router(policy(band), store)
        decision = asyncio.run(router.decide(request))
        assert decision.reason.endswith(f"decided by the {stage} stage")
        assert 0 <= decision.score <= 1
    assert scorer_settings(policy(0.0).routing.classifier) != scorer_settings(policy(1.0).routing.classifier)


def test_flat_trees_predict_what_scikit_learn_predicts():
    from sklearn.ensemble import HistGradientBoostingRegressor

    from router.scoring.flat_trees import FlatTrees
    from router.scoring.transfer import TransferRouter

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5))
    y = X[:, 0] - 2 * (X[:, 1] > 0.3) + rng.normal(scale=0.1, size=600)
    X[::17, 2] = np.nan  # missing values take the side the fit chose
    model = HistGradientBoostingRegressor(max_iter=30, max_leaf_nodes=8, min_samples_leaf=20).fit(X, y)
    test = np.vstack([rng.normal(size=(50, 5)), np.full((1, 5), np.nan)])
    assert np.allclose(FlatTrees.of(model).predict(test), model.predict(test), atol=1e-12)
    # a transfer artifact with trees walks them this way, and the flattened table is not pickled with it
    # (the default has been linear since issue 18c; the MiniLM default keeps its 100 trees)
    import pickle

    from router.scoring.artifact import load_artifact

    assert load_artifact("builtin").estimator.model.trees_ is None
    router = load_artifact("builtin:difficulty-minilm").estimator.model
    assert isinstance(router, TransferRouter) and router.trees_ is not None
    router._flat_trees()
    assert "_flat" not in pickle.loads(pickle.dumps(router)).__dict__


def test_text_similarity_stays_on_minilm_when_the_scorer_is_static():
    from router.scoring.embedders import similarity_embedder

    static_default = make_scorer(ClassifierConfig(cache_size=0))
    sim = similarity_embedder(static_default)
    if embedder_key(static_default.artifact.card) == "static":
        assert isinstance(sim.inner, OnnxEmbedder) and sim.inner is not static_default.embedder
    a, b, c = sim.encode(["What is the capital of France?", "Which city is the capital of France?",
                          "What is the capital of Germany?"])
    assert a @ b > 0.9 > a @ c  # a paraphrase is near, another ask is not (static gives ~0.91 to both)
    minilm = make_scorer(ClassifierConfig(artifact="builtin:difficulty-minilm", cache_size=0))
    assert similarity_embedder(minilm).inner is minilm.embedder  # one MiniLM in memory
    assert similarity_embedder(make_scorer(ClassifierConfig(kind="rules"))) is None
