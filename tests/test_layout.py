"""The code's layout rules, checked: module and class sizes, no import circle among the
router's modules, concepts defined once (signal names, hard failures) and the registries
that make an extension one file plus one line."""

from __future__ import annotations

import ast
import dataclasses
import typing
from pathlib import Path

from router.cascade.measures import MEASURES, Measure, Verifiers, build_measures
from router.cascade.signals import HARD_FAILURES, SIGNAL_NAMES, AnswerSignals
from router.policy import EscalationConfig, EscalationOverride
from router.providers.runtimes import RUNTIMES
from router.routing.capabilities import TIER_FILTERS
from router.scoring.registry import EMBEDDERS
from router.state import STATES
from router.store import STORES

ROUTER = Path(__file__).resolve().parent.parent / "router"
MAX_MODULE_LINES, MAX_CLASS_LINES = 400, 300


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROUTER.rglob("*.py"):
        parts = list(path.relative_to(ROUTER.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def test_no_module_over_400_lines_and_no_class_over_300() -> None:
    long_modules = {m: n for m, p in _modules().items() if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long_modules
    long_classes = {}
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                long_classes[f"{module}.{node.name}"] = node.end_lineno - node.lineno + 1
    assert not long_classes


def _runtime_imports(module: str, path: Path, known: set[str]) -> set[str]:
    """Router modules ``module`` imports at run time: at load or inside its functions
    (imports under ``if TYPE_CHECKING``, for annotations only, never run)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out = set()

    def visit(nodes) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try, ast.With, ast.For, ast.While, ast.FunctionDef,
                                 ast.AsyncFunctionDef, ast.ClassDef)):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                continue
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    out.add(sub if sub in known else target)
            elif isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
    visit(ast.parse(path.read_text()).body)
    return {m for m in out if m in known}


def test_no_import_circle_among_router_modules() -> None:
    """Depth-first search for a back edge in the run-time import graph (lazy imports
    included; a package's ``__init__`` importing its own modules is an edge like any other)."""
    modules = _modules()
    graph = {m: _runtime_imports(m, p, set(modules)) - {m} for m, p in modules.items()}
    state: dict[str, str] = {}
    cycles: list[list[str]] = []

    def walk(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                walk(nxt, trail + [nxt])
        state[node] = "done"

    for m in sorted(graph):
        if m not in state:
            walk(m, [m])
    assert not cycles, cycles[:3]


def test_signal_names_are_the_signal_fields_defined_once() -> None:
    fields = {f.name for f in dataclasses.fields(AnswerSignals)}
    assert set(SIGNAL_NAMES) - {"log_tokens"} <= fields  # log_tokens is derived from n_tokens
    assert set(SIGNAL_NAMES) - fields == {"log_tokens"}
    assert fields - set(SIGNAL_NAMES) == {"n_tokens", "n_chars"}  # counts, not signals
    # the policy's escalate_on accepts exactly the hard failures the verdict checks
    hint = typing.get_type_hints(EscalationConfig)["escalate_on"]
    assert set(typing.get_args(typing.get_args(hint)[0])) == set(HARD_FAILURES)
    assert EscalationOverride.model_fields["escalate_on"] is not None


def test_registries_name_each_implementation() -> None:
    assert set(STORES) == {"sqlite", "redis"} and set(STATES) == {"sqlite", "redis"}
    assert set(EMBEDDERS) == {"minilm", "static"}
    assert set(RUNTIMES) == {"slm-local"} and len(TIER_FILTERS) == 2
    measures = build_measures(Verifiers(None))
    assert [m.signal for m in measures] == list(MEASURES) == ["self_check", "verifier", "consistency"]
    assert all(isinstance(m, Measure) and m.signal in SIGNAL_NAMES for m in measures)
