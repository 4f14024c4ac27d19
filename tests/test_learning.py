"""Learning from the router's own traffic: the pure parts (what the log keeps, labels,
sampling probabilities, weighted estimates, the candidate and its evaluation), then the real
server with recorded tiers: samples judged and logged, ``learn`` promoting where the labels
carry signal and refusing where they are noise, feedback stored and shown."""

from __future__ import annotations

import json
import random
import time

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from router.analysis.learning_report import learning_section
from router.analysis.report import quality_retention
from router.errors import InvalidRequestError
from router.learning.candidate import fit_candidate, training_weights
from router.learning.evaluate import compare, time_split, time_splits, weighted_apgr
from router.learning.keep import add_answers, decode_vector, encode_vector, kept_inputs
from router.learning.labels import build_labels
from router.ledger.shadow import is_sampled, sample_probability
from router.policy import policy_from_dict
from router.request.feedback import parse_feedback
from router.store.records import FeedbackRecord, RequestRecord, ShadowRecord


from router.scoring.artifact import artifact_dir
from router.scoring.card import ArtifactCard

# The shipped default artifact's embedder and its vectors' size (what a log row keeps).
_DEFAULT_CARD = ArtifactCard.read(json.loads((artifact_dir("builtin") / "card.json").read_text()))
DEFAULT_EMBEDDER, DEFAULT_DIM = _DEFAULT_CARD.embedder_key, int(_DEFAULT_CARD.embedding_dim)

def _vec(seed: int, dim: int = 8) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_kept_inputs_by_mode_and_vector_round_trip():
    v = _vec(1, 384)
    assert np.allclose(decode_vector(encode_vector(v)), v, atol=1e-3)
    assert kept_inputs("none", v, {"a": 1.0}, "minilm-int8", "hi") is None
    assert kept_inputs("embedding", None, None, None, None) is None
    row = kept_inputs("embedding", v, {"log_chars": 2.5}, "minilm-int8", "the text")
    assert set(row) == {"embedder", "embedding", "features"} and row["features"] == {"log_chars": 2.5}
    assert len(json.dumps(row)) < 1200  # ~1 KB of JSON a request for 384 dimensions
    with_text = kept_inputs("text", v, {}, "minilm-int8", "the text")
    add_answers(with_text, "the answer", "the local attempt")
    assert (with_text["text"], with_text["answer"], with_text["local_answer"]) == ("the text", "the answer",
                                                                                   "the local attempt")
    add_answers(row, "the answer", None)
    assert "answer" not in row  # embedding mode never keeps text
    with pytest.raises(ValueError):
        kept_inputs("all", v, {}, None, None)


def test_sample_probability_uniform_and_uncertain():
    assert sample_probability(0.1, 0.5, "uniform", 0.2) == 0.2
    assert sample_probability(0.5, 0.5, "uncertain", 0.2, band=0.05) == pytest.approx(0.2)
    near, far = (sample_probability(s, 0.5, "uncertain", 0.2, band=0.05, min_rate=0.01) for s in (0.47, 0.2))
    assert 0.01 < near < 0.2 and near == pytest.approx(0.2 * np.exp(-0.6))
    assert far == 0.01  # the floor keeps every request sampleable (bounded weights)
    assert sample_probability(None, None, "uncertain", 0.2) == 0.2  # a forced tier: no distance known
    assert sample_probability(0.5, 0.5, "uncertain", 0.0) == 0.0
    ids = [f"r{i}" for i in range(5000)]
    share = np.mean([is_sampled(i, sample_probability(0.3, 0.5, "uncertain", 0.5, 0.1, 0.01)) for i in ids])
    assert share == pytest.approx(0.5 * np.exp(-2), abs=0.02)


def test_sample_probability_floor_mixes_in_a_uniform_share():
    # floor 0.3: a far request keeps 0.3 of the rate (not min_rate), one at the threshold the whole rate
    far = sample_probability(0.1, 0.5, "uncertain", 0.4, band=0.05, min_rate=0.01, floor=0.3)
    assert far == pytest.approx(0.4 * (0.3 + 0.7 * np.exp(-8)))
    assert sample_probability(0.5, 0.5, "uncertain", 0.4, 0.05, 0.01, floor=0.3) == pytest.approx(0.4)
    mid = sample_probability(0.45, 0.5, "uncertain", 0.4, 0.05, 0.01, floor=0.3)
    assert mid == pytest.approx(0.4 * (0.3 + 0.7 * np.exp(-1)))
    # so the largest inverse-probability weight is 1 / (rate * floor), whatever the distance
    worst = min(sample_probability(s, 0.5, "uncertain", 0.4, 0.05, 0.0, floor=0.25) for s in np.linspace(0, 1, 101))
    assert 1 / worst == pytest.approx(1 / (0.4 * 0.25), rel=1e-3)
    assert sample_probability(0.1, 0.5, "uncertain", 0.4, 0.05, 0.01, floor=1.0) == pytest.approx(0.4)  # = uniform
    assert sample_probability(0.1, 0.5, "uniform", 0.4, floor=0.3) == 0.4  # uniform ignores it
    assert sample_probability(0.1, 0.5, "uncertain", 0.4, 0.05, 0.01) == 0.01  # floor 0: as before
    with pytest.raises(ValueError):
        sample_probability(0.1, 0.5, "uncertain", 0.4, floor=1.5)


def test_training_weights_cap_at_a_multiple_of_the_median():
    w = np.array([1.0, 1.0, 2.0, 2.0, 100.0])
    assert training_weights(w, None).tolist() == w.tolist()
    assert training_weights(w, 5).tolist() == [1.0, 1.0, 2.0, 2.0, 10.0]  # median 2, cap 10
    assert training_weights(np.full(4, 3.0), 1).tolist() == [3.0] * 4  # equal weights (uniform) are unchanged
    assert training_weights(np.zeros(0), 5).shape == (0,)
    with pytest.raises(ValueError):
        training_weights(w, 0.5)
    with pytest.raises(ValueError):
        training_weights(np.array([1.0, 0.0]), 5)


def test_feedback_body_is_checked():
    fb = parse_feedback(b'{"request_id": "abc", "thumbs": "up", "comment": "great"}', "key-1", now=5.0)
    assert (fb.request_id, fb.thumbs, fb.score, fb.comment, fb.api_key_id, fb.ts, fb.good) == (
        "abc", "up", None, "great", "key-1", 5.0, True)
    assert parse_feedback(b'{"request_id": "abc", "score": 0.2}').good is False
    for body, param in [(b'{"request_id": "abc"}', "thumbs"), (b'{"request_id": "abc", "score": 1.5}', "score"),
                        (b'{"request_id": "abc", "score": 1, "thumbs": "up"}', "score"),
                        (b'{"request_id": "abc", "thumbs": "sideways"}', "thumbs"),
                        (b'{"score": 1}', "request_id"), (b'{"request_id": "a", "score": true}', "score"),
                        (b'{"request_id": "a", "score": 1, "rating": 3}', "rating"),
                        (b'{"request_id": "a", "score": 1, "comment": 5}', "comment")]:
        with pytest.raises(InvalidRequestError) as err:
            parse_feedback(body)
        assert err.value.param == param and err.value.status_code == 400
    with pytest.raises(InvalidRequestError) as err:
        parse_feedback(b"not json")
    assert err.value.code == "invalid_json"


def _record(i: int, ts: float, **kw) -> RequestRecord:
    learning = kept_inputs("embedding", _vec(i), {"f": float(i)}, "minilm-int8", None)
    defaults = dict(requested_model="auto", routed_tier="local", tier="local", local=True, score=0.3, threshold=0.5,
                    learning=learning)
    return RequestRecord(f"r{i}", ts, **{**defaults, **kw})


def test_labels_from_feedback_judged_samples_and_escalations():
    records = [_record(0, 1.0), _record(1, 2.0), _record(2, 3.0, tier="cloud", local=False, escalated=True),
               _record(3, 4.0, tier="cloud", local=False, escalated=True), _record(4, 5.0),
               _record(5, 6.0, learning=None), _record(6, 7.0, tier="cloud", local=False, routed_tier="cloud")]
    shadows = [ShadowRecord("r0", 1.1, "shadow", judge_verdict=True, sample_p=0.25),
               ShadowRecord("r1", 2.1, "shadow", judge_verdict=False, sample_p=0.5),
               ShadowRecord("r3", 4.1, "escalation", judge_verdict=True, sample_p=1.0),
               ShadowRecord("r4", 5.1, "shadow", judge_verdict=None, sample_p=0.5),  # the judge was unsure
               ShadowRecord("r5", 6.1, "shadow", judge_verdict=False, sample_p=0.5),
               # the cloud-routed r6 answered by the local tier in shadow (shadow.cloud_rate), judged as good
               ShadowRecord("r6", 7.1, "local_shadow", judge_verdict=True, sample_p=0.2),
               ShadowRecord("r0", 1.2, "local_shadow", judge_verdict=False, sample_p=0.2)]  # r0 was served locally
    feedback = [FeedbackRecord("r1", 9.0, thumbs="up"), FeedbackRecord("r6", 9.0, thumbs="down")]
    labels = build_labels(records, shadows, feedback)
    got = {lb.request_id: (lb.needs_cloud, lb.source, lb.weight) for lb in labels.labels}
    assert got == {"r0": (0, "shadow", 4.0), "r1": (0, "feedback", 1.0),  # feedback beats the judge
                   "r2": (1, "escalation", 1.0), "r3": (0, "escalation", 1.0),  # a judged escalation: its verdict
                   "r6": (0, "local_shadow", 5.0)}  # feedback on a cloud answer is no label; the local shadow's is
    assert labels.without_inputs == 1  # r5: labelled but logged without an embedding
    assert labels.by_source == {"feedback": 1, "shadow": 1, "escalation": 2, "local_shadow": 1}
    X, y, w, ts = labels.arrays(["f"])
    assert X.shape == (5, 9) and list(ts) == [1.0, 2.0, 3.0, 4.0, 7.0]
    section = learning_section(records, shadows, feedback)
    assert section.kept == {"none": 1, "embedding": 6, "text": 0}
    assert section.labels["local_shadow"] == 1  # r6 (r0's local_shadow sample is of a locally served request)
    assert {r.tier: (r.n, r.good, r.up, r.down) for r in section.feedback} == {"local": (1, 1, 1, 0),
                                                                               "cloud": (1, 0, 0, 1)}


def test_retention_uses_inverse_probability_weights():
    rng = np.random.default_rng(0)
    n = 4000
    score = rng.uniform(0, 0.5, n)  # all served locally, threshold 0.5
    good = rng.uniform(size=n) > (score + 0.3)  # answers near the threshold are worse
    records = [RequestRecord(f"q{i}", float(i), tier="local", local=True, score=float(s), threshold=0.5)
               for i, s in enumerate(score)]
    shadows = []
    for r, g in zip(records, good):
        p = sample_probability(r.score, 0.5, "uncertain", 0.6, 0.05, 0.05)
        if is_sampled(r.id, p):
            shadows.append(ShadowRecord(r.id, r.ts, "shadow", agrees=bool(g), sample_p=p))
    truth = good.mean()
    naive = np.mean([s.agrees for s in shadows])
    estimate = quality_retention(records, shadows)
    assert abs(naive - truth) > 0.08  # the near-threshold samples alone are biased low
    assert estimate.estimate == pytest.approx(truth, abs=0.04)
    assert estimate.lo < truth < estimate.hi


def test_candidate_keeps_the_prior_on_noise_and_learns_a_signal():
    rng = np.random.default_rng(0)
    n, dim = 400, 16
    topic = rng.integers(0, 2, n)
    emb = rng.normal(size=(n, dim)) + 2.0 * topic[:, None] * np.eye(dim)[0]
    X = np.hstack([emb, rng.normal(size=(n, 2))]).astype(np.float32)
    prior = np.full(n, 0.5) + rng.normal(scale=0.01, size=n)

    class Prior:  # a prior that knows nothing: the logged score stands for it
        def predict_proba(self, rows):
            return np.column_stack([1 - np.full(len(rows), 0.5), np.full(len(rows), 0.5)])

    y = (topic == 1).astype(float)
    _, choice = fit_candidate(X, y, np.ones(n), prior, Prior(), True, dim)
    assert choice.blocks == "all"
    noise = rng.integers(0, 2, n).astype(float)
    _, noise_choice = fit_candidate(X, noise, np.ones(n), prior, Prior(), True, dim)
    assert noise_choice.blocks == "prior"  # inner CV keeps the prior when the labels are noise
    _, few = fit_candidate(X[:20], y[:20], np.ones(20), prior[:20], Prior(), True, dim)
    assert few.blocks == "prior" and "too few" in few.why


def test_compare_and_time_split():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 500).astype(float)
    good = y + rng.normal(scale=0.5, size=500)
    coin = rng.normal(size=500)
    c = compare(good, coin, y, np.ones(500), cloud_share=0.4, cloud_cost_usd=0.01, n_boot=100)
    assert c.better and c.apgr_candidate[0] > c.apgr_active[0] + 0.1
    assert c.retention_candidate[0] > c.retention_active[0]
    assert c.share_candidate[0] < c.share_active[0] and c.cost_candidate_usd[0] < c.cost_active_usd[0]
    assert not compare(coin, coin + 1e-9 * rng.normal(size=500), y, np.ones(500), 0.4, n_boot=100).better
    assert weighted_apgr(y, y, np.ones(500)) == pytest.approx(1 - y.mean() / 2, abs=0.01)  # the oracle
    tr, te = time_split(np.array([5.0, 1.0, 3.0, 2.0, 4.0]), 0.6)
    assert list(tr) == [1, 3, 2] and list(te) == [4, 0]
    ts = np.array([5.0, 1.0, 3.0, 2.0, 4.0, 0.0])  # rolling origin: each block after everything before it
    assert [(list(a), list(b)) for a, b in time_splits(ts, 0.5, 3)] == [([5, 1, 3], [2]), ([5, 1, 3, 2], [4]),
                                                                       ([5, 1, 3, 2, 4], [0])]
    assert [(list(a), list(b)) for a, b in time_splits(ts, 0.5)] == [(list(x), list(y)) for x, y in [time_split(ts, 0.5)]]


# -- through the real server ----------------------------------------------------------


def _traffic(n_per_topic: int, seed: int):
    """Two topics of prompts the embedding tells apart; the topic the shipped prior scores
    lower is the one that needs the cloud (so the prior ranks this traffic backwards)."""
    from router.scoring.classifier import EmbeddingClassifier

    rnd = random.Random(seed)
    cities = ["Paris", "Rome", "Lima", "Oslo", "Cairo", "Quito", "Hanoi", "Accra", "Bern", "Dakar", "Sofia", "Riga"]
    a = [f"Write a short, warm birthday poem for my friend {rnd.choice(cities)} number {i}, about the sea."
         for i in range(n_per_topic)]
    b = [f"What is {rnd.randint(100, 999)} multiplied by {rnd.randint(10, 99)}? Give only the number, case {i}."
         for i in range(n_per_topic)]
    scorer = EmbeddingClassifier("builtin", embedder_key=DEFAULT_EMBEDDER)
    hard_is_a = np.mean(scorer.score(a[:20])) < np.mean(scorer.score(b[:20]))
    prompts = a + b
    needs = [hard_is_a] * n_per_topic + [not hard_is_a] * n_per_topic
    order = list(range(len(prompts)))
    rnd.shuffle(order)
    return [prompts[i] for i in order], [needs[i] for i in order]


@pytest.mark.slow
def test_learn_from_recorded_traffic_through_the_server(tmp_path):
    from bench.recorded_tiers import CLOUD, JUDGE, LOCAL, Recorded, RecordedTiers
    from router.cli import app

    from .proxy_process import ProxyProcess

    signal_prompts, signal_needs = _traffic(130, seed=0)
    rnd = random.Random(7)
    noise_prompts = [f"Tell me one fact about the number {i} and the colour {rnd.choice(['red', 'blue', 'green'])}."
                     for i in range(240)]
    noise_needs = [rnd.random() < 0.5 for _ in noise_prompts]
    kinds = random.Random(11)  # the recorded three-way verdict: worse when the cloud was needed, else as good or better
    items = [Recorded(p, f"local answer {i}", f"cloud answer {i}", not needs,
                      "worse" if needs else kinds.choice(["same", "same", "better"]))
             for i, (p, needs) in enumerate(zip(signal_prompts + noise_prompts, signal_needs + noise_needs))]
    tiers = RecordedTiers(items).start()
    price = {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 2.0}
    policy = {
        "tiers": {"local": {"model": f"openai/{LOCAL}", "api_base": tiers.url, "api_key": "sk-t",
                            "price": {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}},
                  "cloud": {"model": f"openai/{CLOUD}", "api_base": tiers.url, "api_key": "sk-t", "price": price},
                  "judge": {"model": f"openai/{JUDGE}", "api_base": tiers.url, "api_key": "sk-t", "price": price}},
        # about a quarter of the signal traffic (and the noise) goes to the cloud: judged by the local tier's shadow
        "routing": {"classifier": {"threshold": 0.48}},
        "escalation": {"enabled": False},
        "shadow": {"rate": 1.0, "cloud_rate": 1.0, "judge_tier": "judge", "max_in_flight": 64},
    }
    proxy = ProxyProcess(policy, tmp_path).start()
    try:
        def send(prompts):
            from concurrent.futures import ThreadPoolExecutor

            with httpx.Client(base_url=proxy.url, timeout=60) as client:
                def one(p):
                    r = client.post("/v1/chat/completions", json={"model": "auto", "messages": [{"role": "user", "content": p}]})
                    assert r.status_code == 200, r.text
                    return r.headers["x-request-id"]

                with ThreadPoolExecutor(6) as pool:
                    return list(pool.map(one, prompts))

        t0 = time.time()
        signal_ids = send(signal_prompts)
        t1 = time.time()
        noise_ids = send(noise_prompts)
        # feedback: stored with the request, checked, authenticated as the API
        with httpx.Client(base_url=proxy.url, timeout=30) as client:
            ok = client.post("/v1/feedback", json={"request_id": noise_ids[0], "thumbs": "down", "comment": "wrong"})
            assert ok.status_code == 200 and ok.json() == {"object": "feedback", "request_id": noise_ids[0],
                                                           "stored": True}
            assert client.post("/v1/feedback", json={"request_id": noise_ids[1], "score": 0.9}).status_code == 200
            missing = client.post("/v1/feedback", json={"request_id": "no-such-request", "thumbs": "up"})
            assert missing.status_code == 404 and missing.json()["error"]["code"] == "request_not_found"
            bad = client.post("/v1/feedback", json={"request_id": noise_ids[0], "score": 7})
            assert bad.status_code == 400 and bad.json()["error"]["param"] == "score"
        deadline = time.time() + 60
        while time.time() < deadline:  # shadow samples are taken in the background
            from router.store.sqlite import SQLiteStore

            store = SQLiteStore(proxy.log_path)
            n_samples = len(store.shadows())
            store.close()
            if n_samples >= 0.9 * len(items):
                break
            time.sleep(0.5)
    finally:
        proxy.stop()
        tiers.stop()

    from router.store.sqlite import SQLiteStore

    store = SQLiteStore(proxy.log_path)
    records, shadows, feedback = store.requests(), store.shadows(), store.feedback()
    store.close()
    verdicts = {r.prompt: r.local_ok for r in items}
    by_id = dict(zip(signal_ids + noise_ids, signal_prompts + noise_prompts))
    judged = [s for s in shadows if s.judge_verdict is not None]
    routed = {r.id: r.routed_tier for r in records}
    assert len(judged) >= 0.9 * len(items) and all(s.sample_p == 1.0 for s in judged)
    assert all(s.kind == ("local_shadow" if routed[s.request_id] == "cloud" else "shadow") for s in judged)
    assert 0.15 * len(signal_ids) < sum(routed[i] == "cloud" for i in signal_ids) < 0.6 * len(signal_ids)
    assert all(s.judge_verdict == verdicts[by_id[s.request_id]] for s in judged)  # the recorded judge, logged
    outcomes = {r.prompt: r.outcome for r in items}
    assert all(s.judge_outcome == outcomes[by_id[s.request_id]] for s in judged)  # its three-way verdict too
    assert all([r["outcome"] for r in s.judge_replies] == [s.judge_outcome] * 2 for s in judged)  # both orders
    kept = [r.learning for r in records if r.learning]
    assert len(kept) == len(items) and all(len(decode_vector(k["embedding"])) == DEFAULT_DIM and k["features"]
                                           and "text" not in k for k in kept)
    assert {(f.request_id, f.thumbs, f.score) for f in feedback} == {(noise_ids[0], "down", None),
                                                                     (noise_ids[1], None, 0.9)}
    runner = CliRunner()
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}+00:00"  # noqa: E731
    policy_file = str(proxy.policy_path)
    must = runner.invoke(app, ["learn", "--log", str(proxy.log_path), "--policy", policy_file, "--until", iso(t1),
                               "--out", str(tmp_path / "signal")])
    assert must.exit_code == 0, must.output
    assert "promoted" in must.output and "learning curve" in must.output, must.output
    assert "three-way verdicts" in must.output and "local better" in must.output, must.output
    assert (tmp_path / "signal" / "artifact" / "model.joblib").is_file()
    candidate = policy_from_dict(__import__("yaml").safe_load((tmp_path / "signal" / "candidate-policy.yaml").read_text()))
    from router.scoring.classifier import EmbeddingClassifier

    learned = EmbeddingClassifier(candidate.routing.classifier.artifact, embedder_key=DEFAULT_EMBEDDER)
    scores = learned.score(signal_prompts[:40])
    needs = np.array(signal_needs[:40])
    assert np.mean(np.array(scores)[needs]) > np.mean(np.array(scores)[~needs])  # the server's scorer loads it
    from router.learning.run import learn as run_learn
    from router.policy import load_policy

    # without the cloud-routed labels the candidate's test sees one side of the threshold only: refused
    early = [r for r in records if r.ts <= t1]
    one_side = run_learn(early, [s for s in shadows if s.kind != "local_shadow"], [], load_policy(proxy.policy_path),
                         n_boot=50)
    assert not one_side.promote and "cover only the locally served" in one_side.reason, one_side.reason
    both = run_learn(early, shadows, [], load_policy(proxy.policy_path), n_boot=50)
    assert both.cloud_side_labels > 0 and both.labels.by_source["local_shadow"] > 0
    noise = runner.invoke(app, ["learn", "--log", str(proxy.log_path), "--policy", policy_file, "--since", iso(t1),
                                "--out", str(tmp_path / "noise")])
    assert noise.exit_code == 0, noise.output
    assert "not promoted" in noise.output and not (tmp_path / "noise" / "artifact").exists()
    assert json.loads((tmp_path / "noise" / "learning.json").read_text())["promote"] is False
    assert runner.invoke(app, ["learn", "--log", str(tmp_path / "nope.sqlite3"), "--out", str(tmp_path / "x")]).exit_code == 2
    shown = runner.invoke(app, ["report", "--log", str(proxy.log_path), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    section = json.loads(shown.output)["learning"]
    assert section["kept"]["embedding"] == len(items) and section["kept"]["text"] == 0
    assert {r["tier"]: (r["n"], r["good"]) for r in section["feedback"]} == {"cloud": (2, 1)}  # the noise went to the cloud
    md = runner.invoke(app, ["report", "--log", str(proxy.log_path), "--format", "html",
                             "--learning", str(tmp_path / "signal" / "learning.json")])
    assert 'id="learning"' in md.output and "Learning curves" in md.output and "thumbs up" in md.output


def test_stores_keep_learning_inputs_feedback_and_sample_probabilities(tmp_path, redis_url, redis_prefix):
    from router.policy import StoreConfig
    from router.store.redis import RedisStore
    from router.store.sqlite import SQLiteStore

    sqlite = SQLiteStore(tmp_path / "log.sqlite3")
    redis = RedisStore(StoreConfig(backend="redis", url=redis_url, prefix=redis_prefix,
                                   spool_dir=str(tmp_path / "spool")))
    try:
        for store in (sqlite, redis):
            rec = _record(1, time.time())
            store.record(rec)
            store.record_shadow(ShadowRecord(rec.id, rec.ts, "shadow", judge_verdict=False, sample_p=0.125))
            assert store.has_request(rec.id) and not store.has_request("no-such-request")
            store.record_feedback(FeedbackRecord(rec.id, rec.ts + 1, score=0.25, comment="meh", api_key_id="key-x"))
            back = store.requests()[0]
            assert back.threshold == 0.5 and back.learning == rec.learning
            assert np.allclose(decode_vector(back.learning["embedding"]), _vec(1), atol=1e-3)
            assert store.shadows()[0].sample_p == 0.125
            assert [(f.request_id, f.score, f.comment, f.api_key_id) for f in store.feedback()] == [
                (rec.id, 0.25, "meh", "key-x")]
    finally:
        sqlite.close()
        redis.close()


@pytest.mark.slow
def test_text_mode_keeps_text_and_answers_and_feedback_needs_the_api_key(tmp_path):
    import asyncio

    from bench.recorded_tiers import CLOUD, LOCAL, Recorded, RecordedTiers
    from router.api.app import create_app
    from router.pipeline import Router
    from router.store.sqlite import SQLiteStore

    tiers = RecordedTiers([Recorded("Say hello to the team.", "Hello team!", "Hello, dear team!", True)]).start()
    free = {"input_usd_per_mtok": 0.0, "output_usd_per_mtok": 0.0}
    active = policy_from_dict({
        "tiers": {"local": {"model": f"openai/{LOCAL}", "api_base": tiers.url, "api_key": "sk-t", "price": free},
                  "cloud": {"model": f"openai/{CLOUD}", "api_base": tiers.url, "api_key": "sk-t", "price": free}},
        "routing": {"classifier": {"threshold": 0.99}}, "escalation": {"enabled": False},
        "log": {"path": str(tmp_path / "log.sqlite3"), "keep_for_learning": "text"},
        "server": {"require_api_key": True},
        "api_keys": [{"name": "app", "key": "sk-app"}],
    })
    store = SQLiteStore(tmp_path / "log.sqlite3")
    router = Router(active, store)
    app = create_app(active, router=router, warm_up=False)

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy", timeout=120) as client:
            auth = {"authorization": "Bearer sk-app"}
            r = await client.post("/v1/chat/completions", headers=auth, json={
                "model": "auto", "messages": [{"role": "user", "content": "Say hello to the team."}]})
            assert r.status_code == 200 and r.headers["x-router-tier"] == "local"
            rid = r.headers["x-request-id"]
            denied = await client.post("/v1/feedback", json={"request_id": rid, "thumbs": "up"})
            assert denied.status_code == 401 and denied.json()["error"]["code"] == "missing_api_key"
            ok = await client.post("/v1/feedback", headers=auth, json={"request_id": rid, "thumbs": "up"})
            assert ok.status_code == 200, ok.text
            await router.drain()
            return rid

    try:
        rid = asyncio.run(run())
    finally:
        tiers.stop()
    record = store.requests()[0]
    assert record.id == rid and record.learning["text"] == "Say hello to the team."
    assert record.learning["answer"] == "Hello team!" and record.learning["embedder"] == DEFAULT_EMBEDDER
    assert len(decode_vector(record.learning["embedding"])) == DEFAULT_DIM
    assert store.feedback()[0].api_key_id.startswith("key-")
    store.close()


@pytest.mark.slow
def test_verifier_learned_from_kept_answers_is_written_and_read_by_the_cascade(tmp_path):
    """log.keep_for_learning: text keeps the local answers; learn trains a verifier on them,
    writes it only when it beats a coin on later answers, and the candidate policy's cascade
    checks it (the verifier measure's own loader reads the artifact)."""
    import asyncio

    from router.cascade.measures.verifier import Verifiers
    from router.learning.run import learn, write_outputs
    from router.learning.verifier import fit_verifier

    rnd = random.Random(3)
    good = lambda i: f"The result is {rnd.randint(10, 999)}: add the two amounts, then divide by {i % 7 + 2}."  # noqa: E731
    bad = lambda i: rnd.choice(["I am not sure I can help with that.", "Sorry, I cannot answer this question.",  # noqa: E731
                                "I don't know, maybe ask someone else."]) + f" ({i})"
    n = 240
    wrong = [rnd.random() < 0.3 for _ in range(n)]
    answers = [bad(i) if w else good(i) for i, w in enumerate(wrong)]
    records, shadows = [], []
    for i, (a, w) in enumerate(zip(answers, wrong)):
        learning = kept_inputs("text", _vec(i, DEFAULT_DIM), {}, DEFAULT_EMBEDDER, f"question {i}")
        add_answers(learning, a, None)
        records.append(RequestRecord(f"v{i}", float(i), requested_model="auto", routed_tier="local", tier="local",
                                     local=True, score=0.3, threshold=0.5, learning=learning))
        shadows.append(ShadowRecord(f"v{i}", i + 0.5, "shadow", judge_verdict=not w, sample_p=1.0))
    policy = policy_from_dict({"escalation": {"enabled": False}})
    result = learn(records, shadows, [], policy, n_boot=50)
    v = result.verifier
    assert v is not None and v.promote and v.auroc[1] > 0.5, v.reason
    written = write_outputs(result, tmp_path, policy, None)
    assert (tmp_path / "verifier" / "model.joblib").is_file() and tmp_path / "candidate-policy.yaml" in written
    candidate = policy_from_dict(__import__("yaml").safe_load((tmp_path / "candidate-policy.yaml").read_text()))
    esc = candidate.escalation
    assert esc.enabled and esc.min["verifier"] == v.cut and esc.min_mean_logprob == -100.0 and esc.needs("verifier")
    verifiers = Verifiers(None)
    p_good = asyncio.run(verifiers.p_correct(esc.verifier_artifact, good(1)))
    p_bad = asyncio.run(verifiers.p_correct(esc.verifier_artifact, bad(1)))
    assert p_good > v.cut > p_bad
    assert json.loads((tmp_path / "learning.json").read_text())["verifier"]["promote"] is True
    # answers whose text says nothing about the outcome: no verifier
    noise = fit_verifier([good(i) for i in range(n)], np.array(wrong, dtype=float), np.ones(n), np.arange(n, dtype=float),
                         lambda texts: np.random.default_rng(0).normal(size=(len(texts), 8)), n_boot=50)
    assert not noise.promote and "does not exclude a coin" in noise.reason
    # without kept text (embedding mode) learn trains none
    plain = [RequestRecord(r.id, r.ts, requested_model="auto", routed_tier="local", tier="local", local=True,
                           score=0.3, threshold=0.5, learning={k: x for k, x in r.learning.items()
                                                               if k not in ("text", "answer")}) for r in records]
    assert learn(plain, shadows, [], policy, n_boot=20).verifier is None
