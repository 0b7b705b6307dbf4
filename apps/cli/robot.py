"""CLI: ``agentkit eval fetch``, ``agentkit robot`` and ``agentkit robot-node``.

MuJoCo, gymnasium and aiomqtt are imported inside the commands, so ``agentkit --help`` stays fast and
works without the robot extras.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from agentkit.apps.cli.common import (
    MQTT_PASSWORD_FILE,
    MQTT_TLS_CA,
    MQTT_TLS_CERT,
    MQTT_TLS_KEY,
    MQTT_USERNAME,
    EpisodeProgress,
    check_writable,
    mqtt_auth,
    run_guarded,
)
from agentkit.apps.cli.dashboard import DASHBOARD_OPTION, DASHBOARD_PUBLIC_OPTION, RERUN_OPTION, live_views
from agentkit.apps.cli.groups import app, eval_app


def vlm_model(policy: str, model: str | None, env: str = "fetch") -> str | None:
    """``--model``, or for ``--policy vlm`` on the one-block Fetch world without it, the shipped ``fetch``
    checkpoint's folder (it was trained there; other worlds need ``--model``)."""
    if model or policy not in ("vlm", "fetch-vlm") or env != "fetch":
        return model
    from agentkit.policies.vlm.checkpoints import shipped_checkpoint

    return str(shipped_checkpoint("fetch"))


def _eval(
    env: str, json_out: Path | None, video_episodes: str, resolve: Callable[[], dict[str, object]], **kw: object
) -> None:
    """Shared body of ``eval fetch`` and ``eval panda``; ``resolve`` gives the options that may fail (the
    model folder, the MQTT login), called inside the guard so a failure is one line."""

    def body() -> int:
        from agentkit.benchmarks.report import print_report
        from agentkit.benchmarks.robot import EvalConfig, evaluate, parse_indices
        from agentkit.config import validate

        kw.update(resolve())
        check_writable(json_out)
        cfg = validate(EvalConfig, {"env": env, "video_episodes": parse_indices(video_episodes), **kw}, "(options)")
        with EpisodeProgress(f"{env} {cfg.policy}", cfg.episodes) as bar:
            report = asyncio.run(evaluate(cfg, bar.update))
        multi = bool(report.rows) and "blocks" in report.rows[0]  # several blocks: which one, by instruction
        print_report(report, ("seed", "success", "steps", "decisions") + (("blocks", "instruction") if multi else ()))
        if json_out:
            report.write(json_out)
        typer.echo(json.dumps(report.overall))
        return 0

    run_guarded(body)


@eval_app.command("fetch")
def eval_fetch(
    policy: str = typer.Option("pixels", help="expert | pixels | vlm (or a registered policy name)"),
    env: str = typer.Option(
        "fetch", help="fetch (one block) | fetch-multi (2-4 blocks, an instruction names one) | panda (PyBullet)"
    ),
    episodes: int = typer.Option(50, help="number of seeded episodes"),
    seed: int = typer.Option(0, help="first seed; episode i uses seed+i"),
    record: Path | None = typer.Option(None, help="folder for eval.json and the videos"),
    video_episodes: str = typer.Option("", help="episode indices to film, e.g. 0,1 (needs --record)"),
    json_out: Path | None = typer.Option(None, "--json", help="write the report JSON here"),
    node: str | None = typer.Option(None, help="run on a robot node: mqtt://host:port/name (mqtts:// for TLS)"),
    model: str | None = typer.Option(None, help="checkpoint folder for --policy vlm (default: the shipped fetch one)"),
    max_steps: int = typer.Option(300, help="control steps per episode (0.04 s each)"),
    place_noise: float = typer.Option(
        0.0,
        help="move each episode's first executed place point by up to this much (normalized; the recorded "
        "decision is unchanged): records recoveries from a missed placement (DART)",
    ),
    username: str | None = MQTT_USERNAME,
    password_file: Path | None = MQTT_PASSWORD_FILE,
    tls_ca: Path | None = MQTT_TLS_CA,
    tls_cert: Path | None = MQTT_TLS_CERT,
    tls_key: Path | None = MQTT_TLS_KEY,
) -> None:
    """Success rate, steps and seconds per episode of a policy on FetchPickAndPlace-v4 (MuJoCo)."""
    _eval(
        env,
        policy=policy,
        episodes=episodes,
        seed=seed,
        record=record,
        video_episodes=video_episodes,
        json_out=json_out,
        node=node,
        max_steps=max_steps,
        place_noise=place_noise,
        resolve=lambda: {
            "model": vlm_model(policy, model, env),
            "mqtt": mqtt_auth(username, password_file, tls_ca, tls_cert, tls_key) if node else None,
        },
    )


def eval_panda(**options: Any) -> None:
    """The same evaluation on panda-gym's PandaPickAndPlace-v3 (PyBullet), same tools and policies."""
    eval_fetch(**options)


# `eval panda` is `eval fetch` whose world defaults to panda: one signature, registered twice.
_sig = inspect.signature(eval_fetch)
eval_panda.__signature__ = _sig.replace(  # type: ignore[attr-defined]
    parameters=[
        p.replace(default=typer.Option("panda", help="the world")) if p.name == "env" else p
        for p in _sig.parameters.values()
    ]
)
eval_panda.__annotations__ = dict(eval_fetch.__annotations__)
eval_app.command("panda")(eval_panda)


@app.command("robot")
def robot(
    task: str | None = typer.Option(
        None, help="the instruction given to the policy (default: the world's own, else 'put the block on the target')"
    ),
    policy: str = typer.Option("pixels", help="expert | pixels | vlm"),
    source: str | None = typer.Option(
        None, help="mqtt://host:port/name (mqtts:// for TLS) of a robot node (default: in-process sim)"
    ),
    seed: int = typer.Option(0, help="episode seed"),
    fps: float = typer.Option(10.0, help="camera frames per second"),
    duration: float = typer.Option(30.0, help="stop after this many seconds"),
    video: Path | None = typer.Option(Path("runs/robot.mp4"), help="annotated video of the run"),
    record: Path | None = typer.Option(None, help="recording folder (frames.mp4, decisions.jsonl, actions.jsonl)"),
    model: str | None = typer.Option(None, help="checkpoint folder for --policy vlm"),
    realtime: float = typer.Option(1.0, help="simulation speed vs wall clock (0: as fast as possible)"),
    env: str = typer.Option("fetch", help="in-process world: fetch | fetch-multi (MuJoCo) | panda (PyBullet)"),
    username: str | None = MQTT_USERNAME,
    password_file: Path | None = MQTT_PASSWORD_FILE,
    tls_ca: Path | None = MQTT_TLS_CA,
    tls_cert: Path | None = MQTT_TLS_CERT,
    tls_key: Path | None = MQTT_TLS_KEY,
    dashboard: str | None = DASHBOARD_OPTION,
    dashboard_public: bool = DASHBOARD_PUBLIC_OPTION,
    rerun: Path | None = RERUN_OPTION,
) -> None:
    """Run a robot policy live on a robot camera stream (fetch, panda, or a node over MQTT), annotated video."""

    def body() -> int:
        from agentkit.apps.robot import LiveConfig, run_live
        from agentkit.benchmarks.robot import POINT_LABELS

        cfg = LiveConfig(
            task=task,
            policy=policy,
            source=source,
            mqtt=mqtt_auth(username, password_file, tls_ca, tls_cert, tls_key) if source else None,
            seed=seed,
            fps=fps,
            duration_s=duration,
            video=video,
            record=record,
            model=vlm_model(policy, model, env if source is None else "fetch"),
            realtime=realtime,
            env=env,
        )
        with live_views(dashboard, dashboard_public, rerun, f"robot {cfg.env}: {cfg.task or 'its own task'}") as views:
            sinks = views.sinks("camera", hold_response=True, point_labels=POINT_LABELS)
            result = asyncio.run(run_live(cfg, sinks))
        typer.echo(json.dumps({k: result[k] for k in ("task", "policy", "success", "seconds")}))
        if video:
            typer.echo(f"video: {video}", err=True)
        return 0 if result["success"] else 2

    run_guarded(body)


@app.command("robot-node")
def robot_node(
    env: str = typer.Option("fetch", help="the simulated robot: fetch | fetch-multi (MuJoCo) | panda (PyBullet)"),
    broker: str = typer.Option("mqtt://127.0.0.1:1883", help="mqtt://host:port of the broker (mqtts:// for TLS)"),
    name: str = typer.Option("r1", help="robot name (1-64 of A-Z a-z 0-9 _ -): topics agentkit/<name>/..."),
    fps: float = typer.Option(15.0, help="camera frames per second"),
    seed: int = typer.Option(0, help="seed of the first episode"),
    depth: bool = typer.Option(True, help="publish the depth image too"),
    realtime: float = typer.Option(1.0, help="simulation speed vs wall clock (0: as fast as possible)"),
    username: str | None = MQTT_USERNAME,
    password_file: Path | None = MQTT_PASSWORD_FILE,
    tls_ca: Path | None = MQTT_TLS_CA,
    tls_cert: Path | None = MQTT_TLS_CERT,
    tls_key: Path | None = MQTT_TLS_KEY,
) -> None:
    """Serve a simulated robot over MQTT: publishes frames/depth/state, executes received tool calls.

    Exits 0 on SIGTERM/Ctrl-C (status: offline), non-zero if a node task keeps failing or the broker refuses
    the login (status: offline too).
    """

    def body() -> int:
        from agentkit.apps.robot import serve_node
        from agentkit.envs.robot.worlds import ROBOT_ENVS
        from agentkit.errors import ConfigError

        if env not in ROBOT_ENVS:
            raise ConfigError(f"--env: unknown robot env {env!r}; known: {', '.join(ROBOT_ENVS)}")
        auth = mqtt_auth(username, password_file, tls_ca, tls_cert, tls_key)
        try:
            asyncio.run(
                serve_node(broker, name, fps=fps, seed=seed, depth=depth, realtime=realtime, env=env, auth=auth)
            )
        except KeyboardInterrupt:
            pass
        return 0

    run_guarded(body)
