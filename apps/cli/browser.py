"""CLI: ``agentkit eval miniwob`` (benchmark a GUI policy) and ``agentkit browse URL`` (run it live).

Playwright, rapidocr and the policies are imported inside the commands, so ``agentkit --help`` stays
fast and works without the browser extras.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer

from agentkit.apps.cli.common import EpisodeProgress, check_writable, fail, run_guarded
from agentkit.apps.cli.dashboard import DASHBOARD_OPTION, DASHBOARD_PUBLIC_OPTION, RERUN_OPTION, live_views
from agentkit.apps.cli.groups import app, eval_app

_POLICY_ALIASES = {"oracle": "miniwob-oracle", "ocr": "ocr", "vlm": "vlm-gui"}


def _resolve_tasks(spec: str, policy: str) -> list[str]:
    from agentkit.envs.gui.miniwob import task_names
    from agentkit.errors import ConfigError

    known = task_names()
    if spec == "all":
        if policy == "miniwob-oracle":
            from agentkit.policies.gui.oracle import SOLVERS

            return [t for t in known if t in SOLVERS]
        return known
    tasks = [t.strip() for t in spec.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ConfigError(f"unknown MiniWoB++ task(s): {', '.join(unknown)} (130 shipped; e.g. click-button)")
    if not tasks:
        raise ConfigError("--tasks is empty: give a comma-separated list or 'all'")
    return tasks


@eval_app.command("miniwob")
def eval_miniwob(
    policy: str = typer.Option("oracle", help="oracle | ocr | vlm (or a registered policy name)"),
    tasks: str = typer.Option("click-button", help="comma-separated task names, or 'all'"),
    episodes: int = typer.Option(20, min=1, help="episodes per task"),
    seed: int = typer.Option(0, help="first seed; episode i of a task uses seed+i"),
    record: Path | None = typer.Option(None, help="save episodes as DIR/<task>-<seed>/ (frames.mp4, jsonl)"),
    json_out: Path | None = typer.Option(None, "--json", help="write the report JSON here"),
    model: str | None = typer.Option(None, help="checkpoint folder for --policy vlm (default: the shipped gui one)"),
    scale: float = typer.Option(3.0, help="device scale factor of the screenshots (task area is 160x210 px)"),
) -> None:
    """Per-task success rate (reward > 0), mean reward, steps and seconds per episode on MiniWoB++."""

    def body() -> int:
        from agentkit.benchmarks.miniwob import evaluate, summarize
        from agentkit.benchmarks.report import print_report
        from agentkit.policy import make_policy

        name = _POLICY_ALIASES.get(policy, policy)
        task_list = _resolve_tasks(tasks, name)
        check_writable(json_out)
        pol = make_policy(name, **({"model": model} if model else {}))
        with EpisodeProgress(f"miniwob {policy}", episodes * len(task_list)) as bar:
            results = asyncio.run(
                evaluate(pol, task_list, episodes, seed, record_dir=record, on_episode=bar.update, scale=scale)
            )
        pol.close()
        report = summarize(results, {"policy": policy, "episodes": episodes, "seed": seed, "tasks": task_list})
        print_report(report, ("task", "success_rate", "mean_reward", "mean_steps", "mean_seconds", "errors"))
        if json_out is not None:
            report.write(json_out)
        return 0

    run_guarded(body)


@app.command("browse")
def browse(
    url: str = typer.Argument(..., help="page to open: http(s)://... or file://... or a local .html path"),
    task: str = typer.Option(..., "--task", help="instruction for the agent, e.g. 'Click on the \"Submit\" button.'"),
    policy: str = typer.Option("ocr", help="ocr | vlm (or a registered policy name)"),
    out: Path = typer.Option(Path("browse_replay.mp4"), help="annotated replay: .mp4 or .gif"),
    steps: int = typer.Option(5, min=1, help="maximum decisions"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="extra host the page may reach (repeatable)"),
    width: int | None = typer.Option(None, help="viewport width (CSS px; default 800)"),
    height: int | None = typer.Option(None, help="viewport height (CSS px; default 600)"),
    model: str | None = typer.Option(None, help="checkpoint folder for --policy vlm (default: the shipped gui one)"),
    config: Path | None = typer.Option(None, help="YAML with a 'browser:' section (see configs/browser.yaml)"),
    dashboard: str | None = DASHBOARD_OPTION,
    dashboard_public: bool = DASHBOARD_PUBLIC_OPTION,
    rerun: Path | None = RERUN_OPTION,
) -> None:
    """Run a GUI agent live on a page and save an annotated replay (clicks and typed text drawn).

    A page that hangs or crashes is restarted and the run goes on (each time an entry in the summary's
    errors); the replay so far is written whatever happens.
    """

    def body() -> int:
        from agentkit.apps.browser_agent import BrowseConfig, run_browse
        from agentkit.config import load_yaml, validate
        from agentkit.errors import AgentkitError

        if out.suffix.lower() not in (".mp4", ".gif"):
            fail(f"--out must end in .mp4 or .gif, got {out.name!r}")
        browser_section = load_yaml(config).get("browser", {}) if config is not None else {}
        name = _POLICY_ALIASES.get(policy, policy)
        args = {"url": url, "task": task, "policy": name, "out": str(out), "steps": steps, "model": model}
        args |= {"allow_hosts": list(allow_host), "width": width, "height": height, "browser": browser_section}
        cfg = validate(BrowseConfig, args, where="(command line)")
        with live_views(dashboard, dashboard_public, rerun, f"browse {cfg.url}: {cfg.task}") as views:
            try:
                summary = asyncio.run(run_browse(cfg, views.sinks("page")))
            except AgentkitError as e:  # the browser did not start or the page never loaded
                if out.exists():  # run_browse writes the replay so far (a card saying why if nothing was seen)
                    fail(f"{(str(e).splitlines() or [type(e).__name__])[0]} (replay so far: {out})")
                raise
        typer.echo(json.dumps(summary, indent=2))
        return 0

    run_guarded(body)
