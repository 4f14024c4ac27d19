"""The README is tested: every YAML block goes through ``slm-router policy check`` as a
policy fragment (merged into ``policies/default.yaml``), and every ``slm-router ...`` command line (in shell blocks and in inline
code) is parsed by the real command line (its subcommand exists, its options and arguments
parse), without running it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer.main
import yaml

try:  # typer 0.29 carries its own copy of click; its commands raise that copy's errors
    from typer._click.core import Context, Exit
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover - typer on the real click
    from click import Context, UsageError
    from click.exceptions import Exit


def _is_group(cmd) -> bool:
    return hasattr(cmd, "resolve_command")
from typer.testing import CliRunner

from router.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_INLINE = re.compile(r"(?<!`)`(slm-router [^`]+)`(?!`)")
_PLACEHOLDER = re.compile(r"\[[^\]]*\]|…|\.\.\.|<[^>]+>")  # [--optional], ..., <name>: prose, not a command


def blocks(kind: str) -> list[tuple[int, str]]:
    """(line number, text) of every fenced block of language ``kind`` in the README."""
    text = README.read_text(encoding="utf-8")
    return [(text[: m.start()].count("\n") + 1, m.group(2)) for m in _FENCE.finditer(text) if m.group(1) == kind]


def commands() -> list[tuple[int, str]]:
    """(line number, command) of every ``slm-router`` invocation: shell-block lines (a
    ``&&`` chain split, comments and line continuations removed) and inline code spans."""
    found: list[tuple[int, str]] = []
    for line_no, body in blocks("bash"):
        joined = body.replace("\\\n", " ")
        for i, line in enumerate(joined.splitlines()):
            for part in re.split(r"&&|\|\||;|\|", _strip_comment(line)):
                part = part.strip()
                if part.startswith("slm-router "):
                    found.append((line_no + 1 + i, part))
    text = README.read_text(encoding="utf-8")
    outside = _FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)
    for m in _INLINE.finditer(outside):
        found.append((outside[: m.start()].count("\n") + 1, m.group(1)))
    return found


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            break
        out.append(ch)
    return "".join(out)


def fragment(body: str) -> str:
    """A README block as a whole policy: its mappings merged, key by key, into
    ``policies/default.yaml`` (a block showing ``tiers.local`` keeps the default cloud tier);
    lists and scalars replace. A block that is not a mapping is returned as written (policy
    check reports it)."""
    if _has_duplicate_keys(yaml.compose(body)):
        return body  # policy check of the block as written names the duplicate
    block = yaml.safe_load(body)
    if not isinstance(block, dict):
        return body
    base = yaml.safe_load((README.parent / "policies" / "default.yaml").read_text(encoding="utf-8"))
    return yaml.safe_dump(_merge(base, block), sort_keys=False)


def _has_duplicate_keys(node) -> bool:
    if isinstance(node, yaml.MappingNode):
        keys = [k.value for k, _ in node.value]
        return len(keys) != len(set(keys)) or any(_has_duplicate_keys(v) for _, v in node.value)
    if isinstance(node, yaml.SequenceNode):
        return any(_has_duplicate_keys(v) for v in node.value)
    return False


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@pytest.mark.parametrize("line_no,body", blocks("yaml"), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_yaml_block_passes_policy_check(line_no, body, tmp_path):
    path = tmp_path / f"readme-line{line_no}.yaml"
    try:  # duplicate keys, bad indentation: policy check of the block as written names them
        text = fragment(body)
    except yaml.YAMLError:
        text = body
    path.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(app, ["policy", "check", str(path)])
    assert result.exit_code == 0, f"README.md line {line_no}: policy check failed:\n{result.output}"


def _parse(argv: list[str]) -> None:
    """Parse ``argv`` (after ``slm-router``) down to the leaf command, building each
    click context without invoking anything (``resilient_parsing`` off: bad options fail)."""
    cmd = typer.main.get_command(app)
    ctx = cmd.make_context("slm-router", list(argv), resilient_parsing=False)
    while _is_group(cmd):
        name, sub, rest = cmd.resolve_command(ctx, list(getattr(ctx, "_protected_args", None) or getattr(ctx, "protected_args", [])) + list(ctx.args))
        cmd = sub
        ctx = sub.make_context(name, rest, parent=ctx, resilient_parsing=False)


def _leaf(words: list[str]) -> tuple[object, list[str]]:
    """The command named by the leading ``words`` (subcommand names) and that path."""
    cmd = typer.main.get_command(app)
    path: list[str] = []
    for word in words:
        sub = cmd.get_command(Context(cmd), word) if _is_group(cmd) else None
        if sub is None:
            break
        cmd, path = sub, path + [word]
    assert path, f"no slm-router subcommand in {words}"
    return cmd, path


@pytest.mark.parametrize("line_no,command", commands(), ids=lambda v: f"line{v}" if isinstance(v, int) else "")
def test_command_line_parses(line_no, command, tmp_path, monkeypatch):
    monkeypatch.chdir(README.parent)
    if _PLACEHOLDER.search(command):  # a synopsis: its command exists and knows every option named
        words = command.split()[1:]
        leaf, path = _leaf([w for w in words if re.fullmatch(r"[a-z][a-z-]*", w)])
        known = {opt for p in leaf.params for opt in p.opts + p.secondary_opts}
        unknown = [o for o in re.findall(r"(?<![\w-])--?[a-z][a-z-]*", command) if o not in known]
        assert not unknown, f"README.md line {line_no}: `slm-router {' '.join(path)}` has no option {unknown}"
        return
    argv = shlex.split(command)[1:]
    leaf, path = _leaf(argv)
    if path == argv and not _is_group(leaf):  # a command named in prose (no arguments): it exists
        return
    try:
        _parse(argv)
    except Exit:
        pass
    except UsageError as err:
        pytest.fail(f"README.md line {line_no}: `{command}` does not parse: {err.format_message()}")


def test_the_readme_has_blocks_and_commands():
    assert len(blocks("yaml")) >= 10 and len(commands()) >= 20


def test_a_fragment_keeps_the_defaults_and_a_wrong_key_still_fails(tmp_path):
    merged = yaml.safe_load(fragment("tiers:\n  local: {runtime: {parallel: 4}}\n"))
    assert merged["tiers"]["local"]["runtime"]["parallel"] == 4 and merged["tiers"]["local"]["model"]
    assert "cloud" in merged["tiers"]
    with pytest.raises(AssertionError, match="unknown key 'transport'"):
        test_yaml_block_passes_policy_check(1, "tiers:\n  cloud: {transport: auto}\n", tmp_path)
    with pytest.raises(AssertionError, match="duplicate key 'price'"):
        test_yaml_block_passes_policy_check(2, "price: {usd_per_hour: 1}\nprice: {usd_per_hour: 2}\n", tmp_path)


def test_the_checks_catch_a_wrong_command():
    with pytest.raises(UsageError, match="No such option"):
        _parse(["serve", "--prot", "8000"])
    with pytest.raises(UsageError, match="No such command"):
        _parse(["policy", "chek", "x.yaml"])
    with pytest.raises(AssertionError, match="no option"):
        test_command_line_parses(1, "slm-router replay --policy X [--bogus Y]", None, pytest.MonkeyPatch())
