"""`policy check`: broken files give the expected messages with line and column; examples
pass; `serve` refuses an invalid policy with the same messages; the committed JSON Schema
is up to date."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from router.cli import app
from router.cli.policy import schema_json
from router.errors import PolicyError
from router.policy import Policy, load_policy
from router.policy.check import check_policy_file, check_policy_text

REPO = Path(__file__).resolve().parent.parent
ENV = {"SET_KEY": "sk-1"}

_TIERS = """\
tiers:
  local: {model: slm-local/smollm2, price: {input_usd_per_mtok: 0, output_usd_per_mtok: 0}}
  cloud: {model: openai/gpt-4o-mini, api_key: "${SET_KEY}"}
"""


def _check(text: str, deployment: bool = False, env=ENV):
    return check_policy_text(textwrap.dedent(text), "p.yaml", env, deployment=deployment)


def _lines(report) -> list[str]:
    return [str(p) for p in report.problems]


@pytest.mark.parametrize("text,expected", [
    # unknown key, with the nearest valid one
    (_TIERS + "routing:\n  classifier:\n    thresold: 0.3\n",
     "p.yaml:6:5: error: routing.classifier.thresold: unknown key 'thresold' (hint: did you mean 'threshold'?)"),
    (_TIERS + "escalaton: {enabled: false}\n",
     "p.yaml:4:1: error: escalaton: unknown key 'escalaton' (hint: did you mean 'escalation'?)"),
    (_TIERS.replace("api_key:", "api_kye:"),
     "p.yaml:3:38: error: tiers.cloud.api_kye: unknown key 'api_kye' (hint: did you mean 'api_key'?)"),
    # wrong type / out of range
    (_TIERS + "routing:\n  classifier: {threshold: high}\n",
     "p.yaml:5:27: error: routing.classifier.threshold: Input should be a valid number, unable to parse string as "
     "a number, got 'high' (hint: threshold: route to the cloud tier when P(needs cloud) >= threshold)"),
    (_TIERS + "escalation: {min_mean_logprob: 0.5}\n",
     "p.yaml:4:32: error: escalation.min_mean_logprob: Input should be less than or equal to 0, got 0.5"),
    (_TIERS + "routing: {on_cloud_unavailable: maybe}\n",
     "p.yaml:4:33: error: routing.on_cloud_unavailable: Input should be 'local' or 'error', got 'maybe'"),
    (_TIERS + "tiers2: 1\nrules: {name: x}\n",
     "p.yaml:5:8: error: rules: Input should be a valid list"),
    # a tier referenced but not defined
    (_TIERS + "routing: {cloud_tier: clowd}\n",
     "p.yaml:4:23: error: routing.cloud_tier: tier 'clowd' is not defined under tiers (defined: cloud, local) "
     "(hint: did you mean 'cloud'?)"),
    (_TIERS + "rules:\n  - name: r\n    action: {forbid: [premium]}\n",
     "p.yaml:6:23: error: rules[0].action.forbid[0]: tier 'premium' is not defined under tiers (defined: cloud, local)"),
    (_TIERS + "aliases: {gpt-4o: clod}\n",
     "p.yaml:4:19: error: aliases.gpt-4o: alias target 'clod' is not defined under tiers (defined: cloud, local) "
     "(hint: did you mean 'cloud'?)"),
    (_TIERS + "api_keys:\n  - {name: a, sha256: " + "a" * 64 + ", overlay: strct}\noverlays: {strict: {threshold: 0.2}}\n",
     "p.yaml:5:98: error: api_keys[0].overlay: overlay 'strct' is not defined under overlays (defined: strict) "
     "(hint: did you mean 'strict'?)"),
    (_TIERS + "rules:\n  - name: r\n    match: {keys: [alise]}\n    action: {tier: local}\n"
     "api_keys:\n  - {name: alice, sha256: " + "b" * 64 + "}\n",
     "p.yaml:6:20: error: rules[0].match.keys[0]: no api_keys entry is named 'alise' (hint: did you mean 'alice'?)"),
    # rules: a bad regular expression, an empty action, duplicate names
    (_TIERS + "rules:\n  - name: r\n    match: {last_user_regex: '(unclosed'}\n    action: {tier: cloud}\n",
     "p.yaml:6:30: error: rules[0].match.last_user_regex: last_user_regex is not a valid regular expression: "
     "missing ), unterminated subpattern at position 0"),
    (_TIERS + "rules:\n  - name: r\n    action: {}\n",
     "p.yaml:6:13: error: rules[0].action: a rule action needs one of: tier, forbid, threshold, disable_escalation"),
    (_TIERS + "rules:\n  - {name: r, action: {tier: local}}\n  - {name: r, action: {tier: cloud}}\n",
     "p.yaml:6:12: error: rules[1].name: rule name 'r' is already used by rules[0]"),
    (_TIERS + "rules:\n  - name: r\n    match: {needs: [audio]}\n    action: {tier: cloud}\n",
     "p.yaml:6:21: error: rules[0].match.needs[0]: Input should be 'vision', 'tools' or 'json', got 'audio'"),
    # missing required key; both threshold and target share
    ("tiers:\n  local: {price: {input_usd_per_mtok: 0, output_usd_per_mtok: 0}}\n",
     "p.yaml:2:3: error: tiers.local.model: missing required key 'model'"),
    (_TIERS + "routing:\n  classifier: {threshold: 0.4, target_cloud_share: 0.3}\n",
     "p.yaml:5:15: error: routing.classifier: set either threshold or target_cloud_share, not both"),
    # YAML itself
    (_TIERS + "routing: {cloud_tier: cloud\n",
     "p.yaml:5:1: error: not valid YAML: while parsing a flow mapping expected ',' or '}', but got '<stream end>'"),
    (_TIERS + "escalation: {enabled: true}\nescalation: {enabled: false}\n",
     "p.yaml:5:1: error: escalation: duplicate key 'escalation' (first at line 4); YAML would keep only the last"),
    ("- a\n- b\n", "p.yaml:1:1: error: the policy must be a YAML mapping of sections, got list"),
    # aliases no walk can finish: one that contains itself, a "billion laughs" bomb
    (_TIERS + "rules: &r [*r]\n",
     "p.yaml:4:8: error: not valid YAML: an alias refers to a node that contains it (a recursive anchor)"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]\n" for p, n in zip("abcdefgh", "bcdefghi")),
     "p.yaml:1:1: error: not valid YAML: the document's anchors and aliases expand to more than 100,000 values (an alias bomb)"),
    ("a: " + "[" * 3000 + "]" * 3000 + "\n", "p.yaml:1:1: error: not valid YAML: nested too deeply"),
])
def test_broken_files_give_expected_messages(text, expected):
    report = _check(text)
    assert any(line.startswith(expected) for line in _lines(report)), "\n".join(_lines(report))
    assert report.policy is None and report.errors


def test_anchors_and_merge_keys_still_work():
    text = _TIERS.replace("${SET_KEY}", "sk-x") + (
        "budgets:\n  enabled: true\n  default: &limits {daily_usd: 5.0, monthly_usd: 100.0}\n"
        "  tenants: {key-1a2b3c4d5e6f7a8b: {<<: *limits, daily_usd: 50.0}}\n")
    report = _check(text)
    assert not report.errors, "\n".join(_lines(report))
    assert report.policy.budgets.tenants["key-1a2b3c4d5e6f7a8b"].monthly_usd == 100.0


def test_every_problem_is_reported_in_one_pass():
    text = _TIERS + textwrap.dedent("""\
        routing:
          cloud_tier: clod
          classifier: {thresold: 0.3}
        rules:
          - name: r
            action: {tier: premium}
        """)
    report = _check(text)
    assert [(p.line, p.path) for p in report.errors] == [
        (5, "routing.cloud_tier"), (6, "routing.classifier.thresold"), (9, "rules[0].action.tier")]


def test_unset_environment_variable_is_a_warning_with_position():
    report = _check(_TIERS.replace("${SET_KEY}", "${UNSET_KEY_FOR_TEST}") + "log: {path: '${LOG_DIR:-/tmp}/x.db'}\n")
    assert not report.errors and report.policy is not None
    assert _lines(report) == [
        "p.yaml:3:47: warning: tiers.cloud.api_key: environment variable UNSET_KEY_FOR_TEST is unset; the value "
        "becomes empty (hint: tier 'cloud' is unavailable until UNSET_KEY_FOR_TEST is set)"]
    assert not report.policy.cloud.available and report.policy.log.path == "/tmp/x.db"


def test_deployment_checks_price_gguf_artifact_and_unenforced_sections(tmp_path):
    text = textwrap.dedent("""\
        tiers:
          local: {model: slm-local/no/such/model.gguf, price: {input_usd_per_mtok: 0, output_usd_per_mtok: 0}}
          cloud: {model: openai/my-private-finetune, api_base: "http://127.0.0.1:9/v1"}
        routing:
          classifier: {artifact: %s}
        overlays: {cheap: {budgets: {daily_usd: 5}}}
        """ % (tmp_path / "nothing"))
    lines = _lines(_check(text, deployment=True))
    assert any(line.startswith("p.yaml:2:18: error: tiers.local.model: GGUF file not found: no/such/model.gguf")
               for line in lines), lines
    assert any(line.startswith("p.yaml:5:26: error: routing.classifier.artifact: classifier artifact") for line in lines)
    # Fix the errors: the warnings remain and the policy loads.
    text = text.replace("slm-local/no/such/model.gguf", "slm-local/smollm2").replace(str(tmp_path / "nothing"), "builtin")
    report = _check(text, deployment=True)
    assert not report.errors and report.policy is not None
    lines = _lines(report)
    assert lines[0] == (
        "p.yaml:3:18: warning: tiers.cloud.model: litellm has no price for model 'openai/my-private-finetune'; its "
        "calls would be logged unpriced and flagged by the report (hint: add price: {input_usd_per_mtok: ..., "
        "output_usd_per_mtok: ...} to the tier)")
    assert lines[1].startswith("p.yaml:6:") and lines[1].endswith(
        "warning: overlays.cheap.budgets: per-key budgets apply only with budgets.enabled: true")
    assert len(lines) == 2


def test_example_policies_pass_check():
    files = sorted((REPO / "policies").glob("*.yaml"))
    assert {f.name for f in files} >= {"default.yaml", "cost-saver.yaml", "quality-first.yaml", "local-only.yaml",
                                        "ollama.yaml"}
    for f in files:
        report = check_policy_file(f, environ={})
        assert not report.errors, report.format()
        assert report.policy is not None


def test_target_cloud_share_needs_no_threshold_and_loads():
    report = _check(_TIERS + "routing:\n  classifier: {target_cloud_share: 0.2}\n", deployment=True)
    assert not report.errors and report.policy.routing.classifier.target_cloud_share == 0.2


def test_load_policy_raises_with_the_same_messages(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(_TIERS + "routing:\n  classifier:\n    thresold: 0.3\n")
    with pytest.raises(PolicyError) as e:
        load_policy(bad)
    assert f"{bad}:6:5: error: routing.classifier.thresold: unknown key 'thresold'" in e.value.message
    with pytest.raises(PolicyError, match="cannot read policy file"):
        load_policy(tmp_path / "missing.yaml")


def test_cli_policy_check_exit_codes(tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.yaml"
    bad.write_text("routing:\n  classifier: {thresold: 0.3}\n")
    result = runner.invoke(app, ["policy", "check", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:2:16: error: routing.classifier.thresold: unknown key 'thresold' (hint: did you mean " \
           "'threshold'?)" in result.output
    assert "invalid policy: 1 error(s)" in result.output
    good = tmp_path / "good.yaml"
    good.write_text(_TIERS.replace("${SET_KEY}", "sk-x"))
    result = runner.invoke(app, ["policy", "check", str(good)])
    assert result.exit_code == 0 and "policy OK" in result.output
    warn = tmp_path / "warn.yaml"
    warn.write_text(_TIERS.replace("${SET_KEY}", "${UNSET_KEY_FOR_TEST}"))
    assert runner.invoke(app, ["policy", "check", str(warn)]).exit_code == 0
    assert runner.invoke(app, ["policy", "check", "--strict", str(warn)]).exit_code == 2


def test_policy_schema_to_an_unwritable_path_is_one_line_and_exit_2(tmp_path):
    result = CliRunner().invoke(app, ["policy", "schema", "-o", str(tmp_path / "missing" / "dir" / "s.json")])
    assert result.exit_code == 2 and "cannot write" in result.output and "Traceback" not in result.output


def test_serve_refuses_an_invalid_policy_with_the_same_messages(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(_TIERS.replace("${SET_KEY}", "sk-x") + "routing: {cloud_tier: clowd}\n")
    out = subprocess.run([sys.executable, "-m", "router.cli", "serve", "--policy", str(bad), "--port", "9"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert f"{bad}:4:23: error: routing.cloud_tier: tier 'clowd' is not defined under tiers" in out.stderr
    assert "hint: did you mean 'cloud'?" in out.stderr


def test_committed_json_schema_is_up_to_date():
    committed = (REPO / "policies" / "policy.schema.json").read_text()
    assert committed == schema_json(), "regenerate: slm-router policy schema -o policies/policy.schema.json"
    assert set(Policy.model_json_schema()["properties"]) >= {
        "tiers", "routing", "escalation", "aliases", "rules", "api_keys", "overlays", "budgets", "cache", "shadow", "log"}
