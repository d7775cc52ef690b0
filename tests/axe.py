"""axe-core, from the npm registry, installed on first use into var/ (ignored by git)."""

import fcntl
import shutil
import subprocess

import pytest

from .browser import announce
from .stack import ROOT

AXE_VERSION = "4"
AXE_DIR = ROOT / "var" / "axe-core"
AXE_JS = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = ("serious", "critical")

# axe.run on the whole document; each violation with its nodes, in a form that prints well.
RUN_AXE = """async () => {
  const results = await axe.run(document, {resultTypes: ['violations']});
  return results.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
    nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary})),
  }));
}"""


def axe_source() -> str:
    """The text of axe.min.js; `npm install`s axe-core@4 the first time (under a file lock)."""
    if not AXE_JS.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot install axe-core from the npm registry")
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        with (AXE_DIR / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not AXE_JS.exists():
                done = subprocess.run(
                    [npm, "install", "--prefix", str(AXE_DIR), "--no-audit", "--no-fund"]
                    + ["--loglevel", "error", f"axe-core@{AXE_VERSION}"],
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                if done.returncode != 0 or not AXE_JS.exists():
                    pytest.fail(f"npm install axe-core failed:\n{done.stdout}\n{done.stderr}")
    return AXE_JS.read_text()


def run_axe(page, source: str) -> list[dict]:
    """Inject axe into the page and return its violations (every impact)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(content=source)
    return page.evaluate(RUN_AXE)


def describe(page_name: str, violations: list[dict]) -> list[str]:
    """Lines for a report: one per violation, then one per offending node."""
    if not violations:
        return [f"axe {page_name}: no violations"]
    lines = []
    for v in violations:
        lines.append(f"axe {page_name}: [{v['impact']}] {v['id']}: {v['help']} ({v['helpUrl']})")
        for node in v["nodes"]:
            lines.append(f"    {node['target']}: " + " ".join(node["summary"].split()))
    return lines


def blocking(violations: list[dict]) -> list[dict]:
    return [v for v in violations if v["impact"] in BLOCKING]


def check(request, page, name: str, axe: str, found: dict) -> None:
    """Run axe on `page`, report what it found, and keep the blocking violations as `name`'s."""
    violations = run_axe(page, axe)
    for line in describe(name, violations):
        announce(request, line)
    found[name] = blocking(violations)


def assert_none_blocking(found: dict) -> None:
    """No page `check`ed had a serious or critical violation."""
    bad = {
        page: [f"[{v['impact']}] {v['id']} on {len(v['nodes'])} node(s)" for v in violations]
        for page, violations in found.items()
        if violations
    }
    assert not bad, f"serious or critical accessibility violations: {bad}"
