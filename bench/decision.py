"""Routing-decision latency (embed + text features + classify) and the quality each embedder keeps.

Prints three markdown tables:

1. p50/p99 latency in ms of one routing decision for 20-, 200- and 500-token prompts
   (MiniLM word pieces; MiniLM itself reads at most 256), one request at a time and 16
   concurrent (16 threads, each scoring one prompt per call, as the server does with
   ``asyncio.to_thread``), for
   - ``minilm``: all-MiniLM-L6-v2 on torch, the shipped default artifact (the unoptimised path);
   - ``static``: the same recipe on the model2vec static embedding distilled from that MiniLM
     (``router/artifacts/static-minilm``, int8).
2. where the time goes for a 200-token prompt: embedding vs text features + classifier;
3. 5-fold APGR of the same recipe on RouteLLM MMLU and GSM8K with either embedder, so the
   cost of the speed-up in routing quality is visible.

Prompts are real: MMLU, GSM8K and AlpacaEval texts joined and cut to the exact token count.
Run: ``python bench/decision.py`` (about 5 minutes on 2 cores; ``--no-apgr`` skips table 2).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from router.models import minilm_dir  # noqa: E402
from router.scoring.artifact import builtin_artifact_dir, load_artifact  # noqa: E402
from router.scoring.classifier import EmbeddingClassifier  # noqa: E402

LENGTHS = (20, 200, 500)
N_SERIAL = 60
N_CONCURRENT, PER_THREAD = 16, 8


def _prompts(n_tokens: int, count: int = 16) -> list[str]:
    """``count`` distinct real prompts of exactly ``n_tokens`` MiniLM word pieces."""
    from tokenizers import Tokenizer

    from training.datasets import load

    tok = Tokenizer.from_file(str(minilm_dir() / "tokenizer.json"))
    tok.no_truncation()
    texts = [e.prompt for e in load("mmlu,gsm8k,alpaca_eval")][::37]
    out, i = [], 0
    while len(out) < count:
        ids: list[int] = []
        while len(ids) < n_tokens:
            ids += tok.encode(texts[i % len(texts)], add_special_tokens=False).ids
            i += 1
        out.append(tok.decode(ids[:n_tokens]))
    return out


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def _latency(clf: EmbeddingClassifier, prompts: list[str]) -> tuple[float, float, float, float, float]:
    clf.score(prompts[:2])
    serial = []
    for j in range(N_SERIAL):
        t = time.perf_counter()
        clf.score([prompts[j % len(prompts)]])
        serial.append((time.perf_counter() - t) * 1000)

    def worker(w: int) -> list[float]:
        out = []
        for j in range(PER_THREAD):
            t = time.perf_counter()
            clf.score([prompts[(w + j) % len(prompts)]])
            out.append((time.perf_counter() - t) * 1000)
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(N_CONCURRENT) as pool:
        conc = [x for part in pool.map(worker, range(N_CONCURRENT)) for x in part]
    rate = len(conc) / (time.perf_counter() - t0)
    return statistics.median(serial), _pct(serial, 99), statistics.median(conc), _pct(conc, 99), rate


def _static_twin(progress: bool) -> EmbeddingClassifier:
    """The default artifact's recipe refitted on static embeddings of its training data (no CV)."""
    import tempfile

    from router.scoring.artifact import save_artifact
    from router.scoring.routing_model import RoutingModel, fit_platt
    from training.datasets import label_values, load
    from training.evaluate import group_names
    from training.models import fit_model, make_model
    from training.train import prepare_inputs, recipe

    kind, label, _ = recipe(builtin_artifact_dir())
    card = dict(load_artifact("builtin").card)
    rows = load(card["data"]["datasets"])
    x, dim = prepare_inputs(rows, "static", progress)
    model = fit_model(make_model(kind, label, dim), x, label_values(rows, label), group_names(rows))
    wrapped = RoutingModel(model, kind, label, (1.0, 0.0))
    wrapped.platt = fit_platt(wrapped.raw_score(x[::7]), label_values(rows, "needs_strong")[::7])
    card.update(embedder_key="static", embedding_dim=dim)
    out = Path(tempfile.mkdtemp(prefix="slm-router-static-"))
    save_artifact(out, wrapped, card)
    return EmbeddingClassifier(out)


def _apgr_table() -> None:
    from training.datasets import load
    from training.evaluate import cross_val_raw
    from training.metrics import router_metrics
    from training.train import prepare_inputs, recipe

    kind, label, _ = recipe(builtin_artifact_dir())
    print(f"\n| data (5-fold by prompt, {kind} on {label}) | APGR minilm (unoptimised) | APGR static | difference | within 0.01 |")
    print("|---|---|---|---|---|")
    for name in ("mmlu", "gsm8k"):
        rows = load(name)
        w, s = np.array([e.weak for e in rows]), np.array([e.strong for e in rows])
        got = {}
        for emb in ("minilm", "static"):
            x, dim = prepare_inputs(rows, emb, progress=False)
            got[emb] = router_metrics(cross_val_raw(rows, x, kind, label, dim)[0], w, s)["apgr"]
        d = got["static"] - got["minilm"]
        print(f"| {name} | {got['minilm']:.3f} | {got['static']:.3f} | {d:+.3f} | {'yes' if abs(d) <= 0.01 else 'no'} |", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-apgr", action="store_true", help="skip the APGR comparison")
    args = ap.parse_args(argv)
    import torch

    print(f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}; {N_SERIAL} serial calls, "
          f"{N_CONCURRENT} threads x {PER_THREAD} concurrent calls per cell; load average at start "
          f"{os.getloadavg()[0]:.1f} (other processes share these cores: compare runs at similar load)\n")
    prompts = {n: _prompts(n) for n in LENGTHS}
    routers = {"minilm (torch, default artifact)": EmbeddingClassifier("builtin"),
               "static (model2vec int8, same recipe)": _static_twin(progress=False)}
    print("| embedder | prompt tokens | p50 ms, 1 at a time | p99 ms, 1 at a time | p50 ms, 16 concurrent "
          "| p99 ms, 16 concurrent | decisions/s, 16 concurrent |")
    print("|---|---|---|---|---|---|---|")
    for name, clf in routers.items():
        for n in LENGTHS:
            p50, p99, c50, c99, rate = _latency(clf, prompts[n])
            print(f"| {name} | {n} | {p50:.1f} | {p99:.1f} | {c50:.1f} | {c99:.1f} | {rate:.0f} |", flush=True)
    print("\n| embedder | stage, 200-token prompt, 1 at a time | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for name, clf in routers.items():
        from router.scoring.routing_model import build_inputs

        texts = prompts[200]
        emb_ms, cls_ms = [], []
        for j in range(N_SERIAL):
            t = time.perf_counter()
            e = clf.embedder.encode([texts[j % len(texts)]])
            t1 = time.perf_counter()
            clf.artifact.estimator.predict_proba(build_inputs(e, [texts[j % len(texts)]]))
            t2 = time.perf_counter()
            emb_ms.append((t1 - t) * 1000)
            cls_ms.append((t2 - t1) * 1000)
        print(f"| {name} | embed | {statistics.median(emb_ms):.1f} | {_pct(emb_ms, 99):.1f} |")
        print(f"| {name} | text features + classifier | {statistics.median(cls_ms):.1f} | {_pct(cls_ms, 99):.1f} |", flush=True)
    print(f"\nload average after the latency tables: {os.getloadavg()[0]:.1f}")
    if not args.no_apgr:
        _apgr_table()
    return 0


if __name__ == "__main__":
    sys.exit(main())
