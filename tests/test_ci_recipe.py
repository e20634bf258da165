"""docs/ci/workflow.yml: its hydro-rules steps, run as written on the demo site in a temporary git repository.

The steps that need GitHub (checkout, setup-python, pip install, the comment, the final exit that reads
a step output) are left out; everything else runs through bash as the runner would, with the workflow's
environment. The diff matrix is shrunk through the workflow's own DIFF_FLAGS variable (one zone, one
seed, two days, one fault) to keep the test fast.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "ci" / "workflow.yml"
SMALL_DIFF = "--zones zn-1 --seeds 1 --days 2 --faults dry_reservoir --jobs 1"


def workflow() -> dict:
    """The parts of the workflow file the test needs: top-level env and the job's steps (name, id, env, run).
    A small reader for this file's plain block style (no YAML library is a dependency)."""
    lines = WORKFLOW.read_text().splitlines()
    env: dict = {}
    steps: list[dict] = []
    section = None
    step = None
    block: list[str] | None = None
    block_indent = 0
    for raw in lines:
        if block is not None:
            if raw.strip() == "" or len(raw) - len(raw.lstrip()) >= block_indent:
                block.append(raw[block_indent:])
                continue
            step["run"] = "\n".join(block).strip() + "\n"
            block = None
        line = re.sub(r"\s+#.*$", "", raw)
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            section = line.rstrip(":")
            continue
        if section == "env" and indent == 2:
            k, _, v = line.strip().partition(": ")
            env[k] = v.strip().strip('"')
        elif section == "jobs" and line.strip().startswith("- "):
            step = {"env": {}}
            steps.append(step)
            line = line.replace("- ", "  ", 1)
            indent += 2
        if section == "jobs" and step is not None and indent == 8:
            k, _, v = line.strip().partition(":")
            v = v.strip()
            if k == "run" and v == "|":
                block, block_indent = [], 10
            elif k in ("name", "id", "if", "run", "uses"):
                step[k] = v
        elif section == "jobs" and step is not None and indent == 10 and "env" in step and ": " in line:
            k, _, v = line.strip().partition(": ")
            step["env"][k] = v
    if block is not None:
        step["run"] = "\n".join(block).strip() + "\n"
    return {"env": env, "steps": steps}


def hydro_steps(wf: dict) -> list[dict]:
    """The steps whose script runs hydro-rules."""
    return [s for s in wf["steps"] if any(ln.startswith("hydro-rules ") for ln in s.get("run", "").splitlines())]


def git(cwd: Path, *args: str) -> str:
    r = subprocess.run(
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
        cwd=cwd, check=True, capture_output=True, text=True,
    )  # fmt: skip
    return r.stdout.strip()


def run_step(step: dict, repo: Path, env: dict) -> subprocess.CompletedProcess:
    """A step's script as GitHub runs it: bash --noprofile --norc -eo pipefail."""
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
        cwd=repo, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


@pytest.fixture
def repo(tmp_path) -> tuple[Path, str]:
    """The demo site and the standard rules in a git repository: (its path, the base commit)."""
    r = tmp_path / "site-repo"
    shutil.copytree(ROOT / "rules", r / "rules")
    shutil.copytree(ROOT / "examples", r / "examples")
    git(r, "init", "-q")
    git(r, "add", ".")
    git(r, "commit", "-qm", "base")
    return r, git(r, "rev-parse", "HEAD")


def step_env(wf: dict, repo: Path, base: str, tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(wf["env"])
    env["DIFF_FLAGS"] = SMALL_DIFF
    env["BASE"] = base
    env["GITHUB_OUTPUT"] = str(tmp_path / "github_output")
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    Path(env["GITHUB_OUTPUT"]).write_text("")
    return env


def test_the_workflow_file_says_what_docs_ci_md_says():
    wf = workflow()
    assert wf["env"]["SITE"] == "examples" and wf["env"]["RULES"] == "rules"
    assert wf["env"]["DIFF_FLAGS"] == "--seeds 3 --days 10"  # documented in docs/ci.md, "Keeping it fast"
    assert "--seeds 3 --days 10" in (ROOT / "docs" / "ci.md").read_text()
    uses = [s.get("uses") for s in wf["steps"] if s.get("uses")]
    assert uses[:2] == ["actions/checkout@v4", "actions/setup-python@v5"]
    assert "fetch-depth: 0" in WORKFLOW.read_text()
    commands = [ln.split(">")[0].strip() for s in hydro_steps(wf) for ln in s["run"].splitlines()
                if ln.startswith("hydro-rules ")]  # fmt: skip
    assert commands == [
        'hydro-rules check --format github "$RULES" "$SITE"',
        'hydro-rules fmt --check "$RULES" "$SITE"',
        'hydro-rules test --junit rule-tests.xml "$RULES" "$SITE"',
        'hydro-rules diff "git:$BASE" "$SITE" $DIFF_FLAGS --format markdown --fail-on safety',
    ]
    comment = next(s for s in wf["steps"] if "gh pr comment" in s.get("run", ""))
    assert "comment.md" in comment["run"] and comment["env"]["GH_TOKEN"] == "${{ github.token }}"


def test_a_pull_request_that_shortens_the_recirculation_period_passes_with_a_report(repo, tmp_path):
    r, base = repo
    profiles = r / "examples" / "profiles.hydro"
    profiles.write_text(profiles.read_text().replace("period 20m", "period 16m"))
    git(r, "commit", "-qam", "recirculate every 16 minutes")
    wf = workflow()
    env = step_env(wf, r, base, tmp_path)
    for step in hydro_steps(wf):
        done = run_step(step, r, env)
        assert done.returncode == 0, (step["name"], done.stdout, done.stderr)
    assert (r / "rule-tests.xml").read_text().startswith("<?xml")
    assert "status=0" in Path(env["GITHUB_OUTPUT"]).read_text()
    md = (r / "diff.md").read_text()
    assert md.startswith("### Behaviour diff: examples at ")
    assert "✅ no --fail-on condition holds (safety)" in md
    assert "| longest OFF under duty control (max) | 10 min | 8 min | −2 min | 2 |" in md
    assert (r / "comment.md").read_text() == md[:65000]


def test_a_pull_request_whose_recirculation_skips_reservoir_has_water_fails_the_diff(repo, tmp_path):
    r, base = repo
    wc = r / "rules" / "water_cycle.hydro"
    old = "recirculate pump_recirc guarded by can_run_pump, reservoir_has_water"
    wc.write_text(wc.read_text().replace(old, "recirculate pump_recirc guarded by can_run_pump"))
    git(r, "commit", "-qam", "recirculate without asking reservoir_has_water")
    wf = workflow()
    env = step_env(wf, r, base, tmp_path)
    check, _, _, diff = hydro_steps(wf)
    done = run_step(check, r, env)
    assert done.returncode == 1
    assert re.search(r"^::error file=rules/water_cycle\.hydro,line=\d+.*title=HR303::", done.stdout, re.M)
    done = run_step(diff, r, env)
    assert done.returncode == 0  # the step records the status; the last step of the job fails on it
    assert "status=1" in Path(env["GITHUB_OUTPUT"]).read_text()
    md = (r / "diff.md").read_text()
    assert "❌ --fail-on safety:" in md
    assert "- ❌ **dry_reservoir** (1/1 scenarios): a dry reservoir no longer stops pump_recirc" in md
    fail = next(s for s in wf["steps"] if s.get("if", "").endswith("steps.diff.outputs.status != '0'"))
    assert "exit 1" in fail["run"]
