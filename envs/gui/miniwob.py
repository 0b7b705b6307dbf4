"""MiniWoB++ as a gymnasium-style environment over a real Chromium page.

Why this module exists: MiniWoB++'s 130 task pages ship in the ``miniwob`` package and run over
``file://``; its own environment drives them through Selenium. Here the same pages run in our
:class:`~agentkit.envs.gui.browser.BrowserSession` (Playwright, allowlist, crash restart) and actions are the
GUI tools' :class:`~agentkit.types.ToolCall` s, so every GUI policy is evaluated through the same
validated executor path it uses live.

Protocol (read from ``miniwob/html/core/core.js``): seed with ``Math.seedrandom(seed)``, start with
``core.startEpisodeReal()``, instruction ``core.getUtterance()``; ``WOB_DONE_GLOBAL``,
``WOB_REWARD_GLOBAL`` (time-discounted over a 10 s episode) and ``WOB_RAW_REWARD_GLOBAL`` give the outcome.
The observation a policy gets is pixels (a :class:`~agentkit.types.Frame`, with the utterance in
``meta["utterance"]``); the DOM is only available through the explicitly privileged
:meth:`AsyncMiniWoBEnv.privileged`. The env implements :class:`~agentkit.episode.EpisodeEnv`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentkit.envs.gui.browser import BrowserConfig, BrowserSession, PlaywrightBackend
from agentkit.episode import Outcome, StepInfo
from agentkit.errors import ConfigError, ToolError
from agentkit.tools.gui import gui_toolbox
from agentkit.types import Frame, ToolCall


def miniwob_html_dir() -> Path:
    """The ``html`` folder shipped inside the ``miniwob`` package."""
    try:
        import miniwob
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError("the miniwob package is not installed (pip install miniwob)") from None
    return Path(miniwob.__file__).parent / "html"


def task_names() -> list[str]:
    """Every MiniWoB++ task shipped in the package (130 in miniwob 1.x)."""
    return sorted(p.stem for p in (miniwob_html_dir() / "miniwob").glob("*.html"))


def task_url(task: str) -> str:
    """``file://`` URL of a task page; :class:`ConfigError` for an unknown task."""
    path = miniwob_html_dir() / "miniwob" / f"{task}.html"
    if not path.exists():
        raise ConfigError(f"unknown MiniWoB++ task {task!r} (see `agentkit eval miniwob --tasks all`)")
    return path.as_uri()


_HIDE_HUD_CSS = "#reward-display, #click-canvas { display: none !important; }"

# Privileged DOM snapshot: every rendered element of the task area with its box in CSS pixels.
_DOM_JS = r"""
() => {
  const out = [];
  const root = document.body;
  const skip = new Set(['reward-display', 'click-canvas', 'sync-task-cover']);
  const all = [root, ...root.querySelectorAll('*')].filter(
    el => !skip.has(el.id) && !(el.closest && el.closest('#reward-display, #click-canvas')));
  const index = new Map();
  for (const el of all) {
    const r = el.getBoundingClientRect();
    const st = window.getComputedStyle(el);
    const visible = r.width > 0 && r.height > 0 && st.visibility !== 'hidden' && st.display !== 'none';
    let own = '';
    for (const c of el.childNodes) if (c.nodeType === 3) own += c.textContent;
    const item = {
      i: out.length, tag: el.tagName.toLowerCase(), id: el.id || '',
      cls: (el.className && el.className.baseVal === undefined) ? el.className : '',
      own: own.replace(/\s+/g, ' ').trim(), text: (el.textContent || '').replace(/\s+/g, ' ').trim().slice(0, 300),
      x: r.left, y: r.top, w: r.width, h: r.height, visible: visible,
      type: el.type || '', value: (typeof el.value === 'string') ? el.value : null,
      checked: el.checked === undefined ? null : el.checked, selected: el.selected === true,
      parent: index.has(el.parentElement) ? index.get(el.parentElement) : -1,
      focused: document.activeElement === el, placeholder: el.getAttribute('placeholder') || '',
      name: el.getAttribute('name') || '', href: el.getAttribute('href') || '',
      scrollTop: el.scrollTop, scrollHeight: el.scrollHeight, clientHeight: el.clientHeight,
    };
    index.set(el, out.length);
    out.push(item);
  }
  return out;
}
"""


@dataclass(frozen=True)
class MiniWoBPrivileged:
    """What only a privileged policy (the oracle) may see: the task name and the page's DOM."""

    task: str
    dom: list[dict[str, Any]]


@dataclass
class MiniWoBStepInfo(StepInfo):
    """Per-step diagnostics; ``errors`` are recorded, never raised."""

    raw_reward: float = 0.0
    reason: str | None = None
    blocked: list[str] = field(default_factory=list)


class AsyncMiniWoBEnv:
    """One MiniWoB++ task in one browser page: ``await reset(seed)``, ``await step(calls)``.

    Args:
        task: Task name, e.g. ``"click-button"``.
        scale: Device scale factor of the screenshots (the task area is 160x210 CSS px; 3 gives 480x630).
        max_steps: Steps before the episode is truncated.
        settle_s: Pause after actions before reading the reward and the next screenshot.
        allow_hosts: Extra hosts the page may reach (none by default; MiniWoB++ is offline).
        session: Share a running browser (the env then does not close it).
    """

    WIDTH = 160
    HEIGHT = 210

    def __init__(
        self,
        task: str,
        *,
        scale: float = 3.0,
        max_steps: int = 12,
        settle_s: float = 0.15,
        allow_hosts: list[str] | None = None,
        screencast: bool = False,
        session: BrowserSession | None = None,
    ) -> None:
        self.task = task
        self.url = task_url(task)
        self.max_steps = max_steps
        self.settle_s = settle_s
        cfg = BrowserConfig(
            width=self.WIDTH,
            height=self.HEIGHT,
            scale=scale,
            allow_hosts=list(allow_hosts or []),
            allow_file_roots=[str(miniwob_html_dir())],
            screencast=screencast,
            screenshot_interval_s=1.0,
        )
        self.session = session or BrowserSession(cfg, name=f"miniwob:{task}")
        self._owns = session is None
        self.backend = PlaywrightBackend(self.session)
        self.toolbox = gui_toolbox(self.backend, timeout_s=5.0)
        self.steps = 0
        self.done = True
        self.seed: int | None = None
        self.utterance = ""
        self.reward = self.raw_reward = 0.0
        self._loaded = False
        self._t_start = 0.0
        self._blocked_seen = 0

    async def start(self) -> None:
        if self._owns and self.session.page is None:
            await self.session.start()

    async def close(self) -> None:
        if self._owns:
            await self.session.close()

    async def __aenter__(self) -> AsyncMiniWoBEnv:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def set_task(self, task: str) -> None:
        """Switch to another task page (keeps the browser)."""
        self.task, self.url, self._loaded = task, task_url(task), False

    async def reset(self, *, seed: int | None = None) -> tuple[Frame, dict[str, Any]]:
        """Start a new episode; the same ``seed`` gives the same problem."""
        if await self.session.ensure_alive() or self.session.url != self.url:
            self._loaded = False
        if not self._loaded:
            await self.session.goto(self.url)
            await self.session.page.wait_for_selector("#sync-task-cover", timeout=10_000)
            # The reward HUD and click canvas sit right of the 160 px task area; hidden, they cannot
            # widen the page and scroll the task out of the viewport (jQuery UI dialogs do that).
            await self.session.page.add_style_tag(content=_HIDE_HUD_CSS)
            self._loaded = True
        seed_js = f"Math.seedrandom({int(seed)});" if seed is not None else "Math.seedrandom();"
        await self.session.evaluate(
            "() => { if (core.EP_TIMER !== null) { clearTimeout(core.EP_TIMER); core.EP_TIMER = null; } "
            + seed_js
            + " core.startEpisodeReal(); window.scrollTo(0, 0); }"
        )
        for _ in range(40):
            if await self.session.evaluate("() => WOB_TASK_READY"):
                break
            await asyncio.sleep(0.05)
        self.seed, self.steps, self.done = seed, 0, False
        self.reward = self.raw_reward = 0.0
        self._blocked_seen = len(self.session.blocked)
        self._t_start = time.monotonic()
        await asyncio.sleep(0.05)
        frame = await self.observe()
        self.utterance = str(frame.meta["utterance"])
        return frame, {"task": self.task, "seed": seed, "instruction": self.utterance}

    async def observe(self) -> Frame:
        """A fresh screenshot, with the current utterance in ``meta["utterance"]``."""
        frame = await self.session.screenshot(kind="observation")
        frame.meta["utterance"] = str(await self.session.evaluate("() => core.getUtterance()"))
        return frame

    async def dom(self) -> list[dict[str, Any]]:
        """PRIVILEGED: the task area's DOM with boxes in CSS pixels. Only for oracle/expert policies."""
        return list(await self.session.evaluate(_DOM_JS))

    async def privileged(self) -> MiniWoBPrivileged:
        """PRIVILEGED: the task name and the DOM, for ``Frame.privileged`` of privileged policies."""
        return MiniWoBPrivileged(self.task, await self.dom())

    async def outcome(self) -> Outcome:
        """Success is a positive (time-discounted) reward, the MiniWoB++ convention."""
        extra = {"raw_reward": self.raw_reward, "utterance": self.utterance}
        return Outcome(self.reward > 0, self.reward, self.steps, extra)

    async def _wob(self) -> dict[str, Any]:
        return dict(
            await self.session.evaluate(
                "() => ({done: WOB_DONE_GLOBAL, reward: WOB_REWARD_GLOBAL, raw: WOB_RAW_REWARD_GLOBAL, "
                "reason: WOB_REWARD_REASON})",
                timeout_s=3.0,
            )
        )

    async def step(
        self, action: ToolCall | Sequence[ToolCall] | None
    ) -> tuple[Frame | None, float, bool, bool, MiniWoBStepInfo]:
        """Run the tool calls of one decision; returns ``(obs, reward, terminated, truncated, info)``.

        A bad call (unknown tool, malformed arguments, a point off the viewport) is an ``ActionResult``
        with ``ok=False`` and a line in ``info.errors``; a page that hangs is reported there too and the
        episode is truncated (the page is restarted on the next reset).
        """
        if self.done:
            raise RuntimeError("step() called before reset() or after the episode ended; call reset()")
        calls = [] if action is None else [action] if isinstance(action, ToolCall) else list(action)
        info = MiniWoBStepInfo()
        n_blocked = self._blocked_seen  # requests blocked since the previous step count on this one
        self.steps += 1
        for call in calls:
            result = await self.toolbox.run(call, seq=self.steps)
            info.results.append(result)
            if not result.ok:
                info.errors.append(result.error or "failed")
                continue
            if call.name in ("finished",):
                break
        await asyncio.sleep(self.settle_s)
        try:
            wob = await self._wob()
        except (ToolError, Exception) as e:
            info.errors.append(f"page unresponsive: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            self.session._crashed = True  # forces a page restart on the next reset
            self.done = True
            info.blocked = self.session.blocked[n_blocked:]
            self._blocked_seen = len(self.session.blocked)
            return None, 0.0, False, True, info
        info.blocked = self.session.blocked[n_blocked:]
        self._blocked_seen = len(self.session.blocked)
        info.errors.extend(f"blocked request: {u}" for u in info.blocked)
        reward = self.reward = float(wob["reward"] or 0.0)
        info.raw_reward = self.raw_reward = float(wob["raw"] or 0.0)
        info.reason = wob.get("reason")
        terminated = bool(wob["done"])
        truncated = not terminated and self.steps >= self.max_steps
        self.done = terminated or truncated
        obs = None
        if not self.done:
            try:
                obs = await self.observe()
            except (ToolError, Exception) as e:
                info.errors.append(f"observation failed: {str(e).splitlines()[0]}")
                self.session._crashed = True
                self.done, truncated = True, True
        return obs, reward, terminated, truncated, info


class MiniWoBEnv:
    """Synchronous wrapper of :class:`AsyncMiniWoBEnv` (gymnasium style) on a private event loop.

    Example:
        >>> env = MiniWoBEnv("click-button")  # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)
        >>> obs, reward, terminated, truncated, info = env.step(ToolCall("click", {"point": [0.5, 0.5]}))
        >>> env.close()
    """

    def __init__(self, task: str, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self.env = AsyncMiniWoBEnv(task, **kwargs)
        self._runner.run(self.env.start())

    def reset(self, *, seed: int | None = None) -> tuple[Frame, dict[str, Any]]:
        return self._runner.run(self.env.reset(seed=seed))

    def step(
        self, action: ToolCall | Sequence[ToolCall] | None
    ) -> tuple[Frame | None, float, bool, bool, MiniWoBStepInfo]:
        return self._runner.run(self.env.step(action))

    def dom(self) -> list[dict[str, Any]]:
        """PRIVILEGED DOM snapshot (see :meth:`AsyncMiniWoBEnv.dom`)."""
        return self._runner.run(self.env.dom())

    def close(self) -> None:
        try:
            self._runner.run(self.env.close())
        finally:
            self._runner.close()
