"""What ``slm-router serve`` does before it imports the server: check the policy while the
models load elsewhere.

Start-up to first answer is mostly imports in one process (litellm, FastAPI, scikit-learn for
the classifier), so the work that can run in other processes starts first (issue 17): the
in-process tiers' worker processes begin loading their model as soon as the policy's schema
is valid, and the classifier artifact is loaded once in a child process to prove it loads
(the policy check's artifact step), while this process checks files and prices and imports
the server. The server then loads the classifier itself once it answers
(:meth:`router.pipeline.Router.warm_up_routing`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ..policy.check import CheckReport, check_policy_file
from ..providers.runtimes import launch_runtimes

__all__ = ["checked_policy", "artifact_loads"]

_LOAD = "import sys; from router.scoring.artifact import load_artifact; load_artifact(sys.argv[1])"


def artifact_loads(location: str) -> subprocess.Popen:
    """A child process that loads the classifier artifact at ``location`` and exits 0 when it
    loads (its output is discarded; a failure is reported by the policy check)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", _LOAD, location], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def checked_policy(path: Path, launch: bool) -> CheckReport:
    """The report of ``slm-router policy check`` on ``path`` (the same findings); with
    ``launch``, the in-process tiers' workers are launched once the schema is valid and the
    artifact is loaded in a child process meanwhile (when it fails to load, the check runs
    again in this process, which names the broken file).

    Launched workers of a refused policy stop when the process exits.
    """
    if not launch:
        return check_policy_file(path)
    report = check_policy_file(path, deployment=False)
    if report.errors or report.policy is None:
        return report
    launch_runtimes(report.policy)
    probe = artifact_loads(str(report.policy.routing.classifier.artifact))
    report = check_policy_file(path, load_artifact=False)
    if report.policy is not None and probe.wait() != 0:
        report = check_policy_file(path)
    else:
        probe.kill()
        probe.wait()
    return report
