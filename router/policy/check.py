"""Checking a policy file: every problem with file, line, column and a hint.

:func:`check_policy_file` reads a YAML policy and returns a :class:`CheckReport`: the
validated :class:`~router.policy.Policy` (None when there are errors) and the list of
:class:`Problem` found. Positions come from PyYAML's node marks. Checks, in order:

- YAML syntax; duplicate keys (YAML keeps the last silently, we call it an error);
- environment variables referenced as ``${VAR}`` (no default) that are unset (warning);
- the schema: unknown keys (with the nearest valid key, via :mod:`difflib`), wrong types,
  values out of range, invalid regular expressions;
- references: tiers, overlays and key names that are not defined, duplicate names;
- deployment facts: a ``slm-local`` GGUF file that does not exist, a classifier artifact
  that is missing (or has no ``score_quantiles`` for ``target_cloud_share``), a model
  litellm has no price for while the tier sets none (warning: its calls are logged
  unpriced), settings that do nothing in the configuration at hand (warning).

``slm-router policy check`` prints :meth:`CheckReport.format`; ``serve`` and hot reload use
the same report, so the messages are identical everywhere.
"""

from __future__ import annotations

import copy
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .env import ENV_PATTERN, LITELLM_ENV, interpolate_env
from .model import Policy
from .positions import Positions, YamlPath, dotted, line_col
from .deployment import deployment_problems, price_problems
from .references import nearest, reference_problems

__all__ = ["Problem", "CheckReport", "check_policy_file", "check_policy_text"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding. ``line`` and ``column`` are 1-based (0 when the file could not be read);
    ``path`` is the dotted location in the policy (``routing.classifier.thresold``);
    ``severity`` is ``error`` (the policy is refused) or ``warning``."""

    source: str
    line: int
    column: int
    severity: str
    path: str
    message: str
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}:{self.column}" if self.line else self.source
        text = f"{where}: {self.severity}: " + (f"{self.path}: " if self.path else "") + self.message
        return text + (f" (hint: {self.hint})" if self.hint else "")


@dataclass
class CheckReport:
    """The outcome of checking one policy file.

    Attributes:
        source: the file as given.
        policy: the validated policy, or None when there are errors.
        problems: every finding, in file order.
    """

    source: str
    policy: Policy | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        """Findings that make the policy invalid."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Findings that do not stop the policy from loading."""
        return [p for p in self.problems if p.severity == "warning"]

    def format(self, include_warnings: bool = True) -> str:
        """One line per problem (``FILE:LINE:COL: severity: path: message (hint: ...)``) and a
        summary line."""
        shown = self.problems if include_warnings else self.errors
        lines = [str(p) for p in shown]
        n_err, n_warn = len(self.errors), len(self.warnings)
        if n_err:
            lines.append(f"{self.source}: invalid policy: {n_err} error(s), {n_warn} warning(s)")
        else:
            lines.append(f"{self.source}: policy OK ({n_warn} warning(s))")
        return "\n".join(lines)


# -- schema walking (for hints) ---------------------------------------------------------


def _unwrap(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else tp
    return tp


def _schema_at(loc: tuple[Any, ...]) -> tuple[Any, Any]:
    """The type at ``loc`` and the pydantic FieldInfo of its last named field (or None)."""
    tp: Any = Policy
    info = None
    for elem in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            if elem not in tp.model_fields:
                return None, info
            info = tp.model_fields[elem]
            tp = info.annotation
        elif typing.get_origin(tp) is dict:
            tp, info = typing.get_args(tp)[1], None
        elif typing.get_origin(tp) is list:
            tp, info = typing.get_args(tp)[0], None
        else:
            return None, info
    return _unwrap(tp), info


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    tp, _ = _schema_at(loc)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return []


# -- checks -----------------------------------------------------------------------------


class _Collector:
    def __init__(self, source: str, positions: Positions) -> None:
        self.source = source
        self.positions = positions
        self.problems: list[Problem] = []

    def add(self, loc: tuple[Any, ...], message: str, hint: str | None = None, severity: str = "error",
            *, at_key: bool = False) -> None:
        path, exact = self.positions.resolve(loc)
        line, col = line_col(self.positions.mark(path, key=at_key or not exact))
        problem = Problem(self.source, line, col, severity, dotted(loc), message, hint)
        if problem not in self.problems:
            self.problems.append(problem)

    def at(self, line: int, column: int, message: str, hint: str | None = None, severity: str = "error",
           path: str = "") -> None:
        self.problems.append(Problem(self.source, line, column, severity, path, message, hint))


MAX_YAML_NODES = 100_000
"""Most nodes a policy may expand to once its aliases are followed (a real policy has a few
hundred); more is an alias bomb ("billion laughs"), which every walk over the document
would take minutes and gigabytes to follow."""


def _alias_problem(root: yaml.Node | None) -> tuple[yaml.Mark | None, str] | None:
    """(where, or None for the whole document; what) when the composed document refers to itself through an alias (``a: &a
    [*a]``, which no walk could finish) or expands to more than :data:`MAX_YAML_NODES`
    nodes; None for a document without such aliases."""
    count = 0
    on_path: set[int] = set()

    def walk(node: yaml.Node) -> tuple[yaml.Mark | None, str] | None:
        nonlocal count
        count += 1
        if count > MAX_YAML_NODES:
            return None, (f"the document's anchors and aliases expand to more than {MAX_YAML_NODES:,} values "
                                     "(an alias bomb)")
        if id(node) in on_path:
            return node.start_mark, "an alias refers to a node that contains it (a recursive anchor)"
        if isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            return None
        on_path.add(id(node))
        for child in children:
            if found := walk(child):
                return found
        on_path.discard(id(node))
        return None

    return walk(root) if root is not None else None


def _duplicate_keys(node: yaml.Node | None, path: YamlPath, out: _Collector) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, yaml.Mark] = {}
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode):
                if k.value in seen and k.value != "<<":
                    first = seen[k.value]
                    line, col = line_col(k.start_mark)
                    out.at(line, col, f"duplicate key {k.value!r} (first at line {first.line + 1}); YAML would keep "
                           "only the last", path=dotted(path + (k.value,)))
                seen.setdefault(k.value, k.start_mark)
                _duplicate_keys(v, path + (k.value,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _duplicate_keys(item, path + (i,), out)


def _unset_env(data: Any, path: YamlPath, environ: Mapping[str, str], out: _Collector) -> None:
    if isinstance(data, str):
        litellm_form = LITELLM_ENV.match(data)
        refs = [(litellm_form.group(1), None)] if litellm_form else [(m.group(1), m.group(2))
                                                                     for m in ENV_PATTERN.finditer(data)]
        for name, default in refs:
            if default is None and not environ.get(name):
                hint = None
                if path and path[-1] == "api_key" and len(path) >= 2:
                    hint = f"tier {path[-2]!r} is unavailable until {name} is set"
                elif path and path[-1] == "key":
                    hint = "this api_keys entry is disabled until the variable is set"
                out.add(path, f"environment variable {name} is unset; the value becomes empty", hint,
                        severity="warning")
    elif isinstance(data, dict):
        for k, v in data.items():
            _unset_env(v, path + (str(k),), environ, out)
    elif isinstance(data, list):
        for i, v in enumerate(data):
            _unset_env(v, path + (i,), environ, out)


def _schema_problems(err: ValidationError, out: _Collector) -> None:
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        kind = e["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            valid = _valid_keys(loc[:-1])
            hint = nearest(key, valid) or (f"valid keys: {', '.join(valid)}" if valid else None)
            out.add(loc, f"unknown key {key!r}", hint, at_key=True)
        elif kind == "missing":
            _, info = _schema_at(loc)
            hint = info.description if info is not None and info.description else None
            out.add(loc, f"missing required key {str(loc[-1])!r}", hint, at_key=True)
        else:
            message = e["msg"]
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
            _, info = _schema_at(loc)
            hint = None
            if info is not None and info.description and kind not in ("literal_error",):
                hint = f"{loc[-1]}: {info.description}"
            if "input" in e and not isinstance(e["input"], (dict, list)) and kind != "value_error":
                message += f", got {e['input']!r}"
            out.add(loc, message, hint)


def _without_bad_leaves(data: dict[str, Any], err: ValidationError) -> Policy | None:
    """The policy with each unknown key and each bad optional value removed, so that the
    references of an otherwise valid file are checked in the same pass; None when an error
    cannot be removed that way (a missing required key, a whole section of the wrong shape)."""
    pruned = copy.deepcopy(data)
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        if not loc:  # a whole-policy error (a model validator): nothing to prune
            return None
        parent: Any = pruned
        for elem in loc[:-1]:
            try:
                parent = parent[elem]
            except (KeyError, IndexError, TypeError):
                return None
        if not isinstance(parent, dict) or loc[-1] not in parent:
            return None
        if e["type"] != "extra_forbidden":
            _, info = _schema_at(loc)
            if info is None or info.is_required():
                return None
        del parent[loc[-1]]
    try:
        return Policy.model_validate(pruned, context={"defer_references": True})
    except ValidationError:
        return None


def _text_line_col(text: str, position: int) -> tuple[int, int]:
    """1-based (line, column) of the character at index ``position`` of ``text``."""
    return text.count("\n", 0, position) + 1, position - (text.rfind("\n", 0, position) + 1) + 1


def _reader_problem(err: yaml.reader.ReaderError) -> str:
    """What PyYAML's reader refused, in one line: YAML 1.1 (section 5.1) allows only printable
    characters, tab, line breaks and non-ASCII text in a document; a NUL, a bell or another
    control character is not one of them (a file saved as UTF-16, or with binary junk)."""
    char = err.character
    code = ord(char) if isinstance(char, str) else (char if isinstance(char, int) else -1)
    name = "NUL" if code == 0 else "a control character"
    return f"the file holds {name} (#x{code:04x}), which YAML does not allow; remove it"


def check_policy_text(text: str, source: str = "<policy>", environ: Mapping[str, str] | None = None,
                      *, deployment: bool = True, load_artifact: bool = True, empty: str = "warning") -> CheckReport:
    """Check a policy given as YAML text.

    Args:
        text: the YAML document.
        source: the name used in messages (normally the file path).
        environ: the environment for ``${VAR}``; ``os.environ`` when None.
        deployment: also check files, artifacts and litellm prices (set False for a pure
            schema check); ``load_artifact``: load the classifier artifact to check it.
        empty: severity of an empty document (the embedded default); ``"error"`` for a reload,
            where a file cut short while it is saved must not switch a server to the default.

    Returns:
        The report; ``report.policy`` is None when any error was found.
    """
    env = os.environ if environ is None else environ
    try:
        loader = yaml.SafeLoader(text)  # its reader refuses a NUL or other control character up front
    except yaml.reader.ReaderError as err:
        line, col = _text_line_col(text, err.position)
        return CheckReport(source, None, [Problem(source, line, col, "error", "", f"not valid YAML: {_reader_problem(err)}")])
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as err:
            mark = err.problem_mark or err.context_mark
            line, col = line_col(mark)
            what = " ".join(x for x in (err.context, err.problem) if x)
            report = CheckReport(source, None)
            report.problems.append(Problem(source, line, col, "error", "", f"not valid YAML: {what}"))
            return report
        except yaml.YAMLError as err:
            report = CheckReport(source, None)
            report.problems.append(Problem(source, 1, 1, "error", "", f"not valid YAML: {err}"))
            return report
        if problem := _alias_problem(root):
            line, col = line_col(problem[0])
            return CheckReport(source, None, [Problem(source, line, col, "error", "", f"not valid YAML: {problem[1]}")])
        out = _Collector(source, Positions(None))
        _duplicate_keys(root, (), out)
        data = loader.construct_document(root) if root is not None else None
    except RecursionError:  # nested deeper than the YAML parser's recursion can follow
        return CheckReport(source, None, [Problem(source, 1, 1, "error", "", "not valid YAML: nested too deeply")])
    except yaml.YAMLError as err:  # construction errors (unknown tags...)
        report = CheckReport(source, None)
        mark = getattr(err, "problem_mark", None)
        line, col = line_col(mark)
        report.problems.append(Problem(source, line, col, "error", "", f"not valid YAML: {err}"))
        return report
    finally:
        loader.dispose()

    positions = Positions(root)
    out.positions = positions
    if data is None:  # an empty file (or only comments): say so, a truncated policy would pass unnoticed
        out.add((), "the file has no settings: it is the embedded default policy", "write the sections to change "
                "(tiers, routing, ...); 'slm-router policy schema' lists them", empty)
        data = {}
    if not isinstance(data, dict):
        out.add((), f"the policy must be a YAML mapping of sections, got {type(data).__name__}")
        return CheckReport(source, None, out.problems)

    _unset_env(data, (), env, out)
    policy: Policy | None = None
    interpolated = interpolate_env(data, dict(env))
    try:
        policy = Policy.model_validate(interpolated, context={"defer_references": True})
    except ValidationError as err:
        _schema_problems(err, out)
        references_of = _without_bad_leaves(interpolated, err)
    else:
        references_of = policy
    if references_of is not None:
        for ref in reference_problems(references_of):
            out.add(ref.path, ref.message, ref.hint, ref.severity)
    if policy is not None:
        if not any(p.severity == "error" for p in out.problems) and deployment:
            deployment_problems(policy, out, load_artifact)
            price_problems(policy, out)
    problems = sorted(out.problems, key=lambda p: (p.line, p.column))
    ok = not any(p.severity == "error" for p in problems)
    return CheckReport(source, policy if ok else None, problems)


def check_policy_file(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None,
                      *, deployment: bool = True, load_artifact: bool = True, empty: str = "warning") -> CheckReport:
    """Check a policy file (see :func:`check_policy_text`); an unreadable file is one error."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        return CheckReport(str(p), None, [Problem(str(p), 0, 0, "error", "", f"cannot read policy file ({reason})")])
    return check_policy_text(text, str(p), environ, deployment=deployment, load_artifact=load_artifact, empty=empty)
