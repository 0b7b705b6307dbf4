"""The import rules of the layout (pyproject's [tool.importlinter]) hold, and a broken rule is caught."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
pytestmark = pytest.mark.skipif(LINT is None, reason="import-linter not installed (pip install import-linter)")


def _lint(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_contracts_hold() -> None:
    r = _lint(REPO)
    assert r.returncode == 0, r.stdout[-3000:]
    assert "2 kept, 0 broken" in r.stdout


@pytest.mark.parametrize(
    ("module", "bad_import", "contract"),
    [
        ("agentkit/types.py", "import agentkit.envs.media.video", "layers"),  # the core imports a world
        ("tools/gui.py", "import agentkit.apps.robot", "layers"),  # a tool imports an app
        ("envs/media/video.py", "import agentkit.benchmarks.report", "layers"),  # a world imports a benchmark
    ],
)
def test_a_deliberate_break_is_caught(tmp_path: Path, module: str, bad_import: str, contract: str) -> None:
    """A copy of the tree with one forbidden import added fails the same check, naming the import."""
    for name in ("agentkit", "policies", "envs", "tools", "benchmarks", "apps", "configs"):
        shutil.copytree(REPO / name, tmp_path / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{bad_import}  # deliberate break\n")
    r = _lint(tmp_path)
    assert r.returncode != 0, r.stdout[-3000:]
    assert "BROKEN" in r.stdout and contract in r.stdout
    importer = "agentkit." + module.removesuffix(".py").replace("/", ".").removeprefix("agentkit.")
    assert importer in r.stdout and bad_import.split()[-1] in r.stdout
