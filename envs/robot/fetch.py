"""The simulated robot world: gymnasium-robotics ``FetchPickAndPlace-v4`` seen through an RGB-D camera.

Why this module exists: the Fetch task ships with privileged state and a free viewer camera, but a
pixels-first agent needs a *calibrated* fixed camera whose colour and depth images, intrinsics and
extrinsics let an image point become a 3-D point in the world (and back). This module owns that camera,
the renderer (EGL, with an OSMesa fallback), the workspace bounds and the step counter; the tools in
``agentkit.tools.robot`` and the policies read the world only through it.

Scene choices (all made by editing the loaded MuJoCo model at runtime, documented in docs/robot.md):

* ``external_camera_0`` is re-attached to the world body and re-posed as a fixed camera above the far
  edge of the table, looking down at the workspace (``CAMERA_POS`` / ``CAMERA_LOOKAT``).
* the block is coloured blue so it stands out from the grey table and floor;
* the red target marker (the ``target0`` site) is drawn in colour *and* depth, as if it were a physical
  red ball the camera can see (the physics ignores it);
* the translucent axes that visualize the mocap target are hidden;
* the robot's geoms are moved to their own geom group so a "self-filtered" depth image (robot and the
  object it holds hidden, as a real robot's self-filter does) can be rendered for deprojection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentkit.errors import SourceError, ToolError
from agentkit.types import Point

ENV_ID = "FetchPickAndPlace-v4"
CAMERA_NAME = "external_camera_0"
CAMERA_POS = np.array([1.62, 0.75, 1.40])
CAMERA_LOOKAT = np.array([1.31, 0.75, 0.42])
CAMERA_FOVY = 42.0
ROBOT_GROUP = 3  # geom group of the robot's own geoms (hidden in self-filtered depth)
HIDDEN_GROUP = 5  # geom group never drawn by the self-filtered pass
BLOCK_RGBA = (0.10, 0.25, 0.95, 1.0)
TABLE_TOP_Z = 0.40  # top of table0 (centre z 0.2 + half height 0.2)
OBJECT_HALF = 0.025  # half edge of the block
SUCCESS_DISTANCE = 0.05  # gymnasium-robotics distance_threshold
HOME_POS = np.array([1.05, 0.75, 0.72])  # gripper pulled back and up: clears the camera's view of the table


@dataclass(frozen=True)
class Workspace:
    """Axis-aligned bounds (metres, world frame) the gripper may be sent to."""

    lo: tuple[float, float, float] = (1.02, 0.38, TABLE_TOP_Z - 0.005)
    hi: tuple[float, float, float] = (1.58, 1.12, 1.00)

    def contains(self, xyz: np.ndarray, margin: float = 0.0) -> bool:
        lo = np.asarray(self.lo) - margin
        hi = np.asarray(self.hi) + margin
        return bool(np.all(xyz >= lo) and np.all(xyz <= hi))

    def check(self, xyz: np.ndarray, what: str = "target") -> None:
        """Raise :class:`ToolError` naming the point and the bounds if ``xyz`` lies outside."""
        if not self.contains(xyz):
            p = ", ".join(f"{v:.3f}" for v in xyz)
            lo = ", ".join(f"{v:.2f}" for v in self.lo)
            hi = ", ".join(f"{v:.2f}" for v in self.hi)
            raise ToolError(f"{what} ({p}) is outside the workspace [{lo}] .. [{hi}]")


@dataclass(frozen=True)
class PinholeCamera:
    """Intrinsics and extrinsics of one MuJoCo camera, with project / deproject.

    MuJoCo cameras look along their local ``-z`` with ``+y`` up; image rows grow downwards. ``K`` is the
    usual 3x3 intrinsic matrix in pixels (square pixels, principal point at the image centre);
    ``R_wc`` / ``t_wc`` map camera coordinates to world coordinates (``x_w = R_wc @ x_c + t_wc``).
    """

    width: int
    height: int
    fovy_deg: float
    R_wc: np.ndarray
    t_wc: np.ndarray

    @property
    def focal(self) -> float:
        return 0.5 * self.height / np.tan(np.deg2rad(self.fovy_deg) / 2)

    @property
    def K(self) -> np.ndarray:
        f = self.focal
        return np.array([[f, 0.0, self.width / 2], [0.0, f, self.height / 2], [0.0, 0.0, 1.0]])

    @property
    def extrinsics(self) -> np.ndarray:
        """The 4x4 camera-to-world transform (OpenGL camera axes: x right, y up, looking along -z)."""
        T = np.eye(4)
        T[:3, :3] = self.R_wc
        T[:3, 3] = self.t_wc
        return T

    def deproject(self, point: Point, depth: float) -> np.ndarray:
        """World xyz of the surface seen at normalized ``point`` with planar ``depth`` (metres)."""
        u, v = point.x * self.width, point.y * self.height
        f = self.focal
        xc = np.array([(u - self.width / 2) / f * depth, -(v - self.height / 2) / f * depth, -depth])
        return self.R_wc @ xc + self.t_wc

    def project(self, xyz: np.ndarray) -> tuple[Point, float]:
        """Normalized image point and planar depth of world point ``xyz``.

        Raises:
            ValueError: if the point is behind the camera or falls off the image.
        """
        xc = self.R_wc.T @ (np.asarray(xyz, dtype=np.float64) - self.t_wc)
        depth = -xc[2]
        if depth <= 1e-6:
            raise ValueError(f"point {xyz} is behind the camera")
        f = self.focal
        u = xc[0] / depth * f + self.width / 2
        v = -xc[1] / depth * f + self.height / 2
        return Point.from_pixels(u, v, self.width, self.height), float(depth)

    def to_dict(self) -> dict[str, Any]:
        return {
            "width": self.width,
            "height": self.height,
            "fovy_deg": self.fovy_deg,
            "K": self.K.round(6).tolist(),
            "extrinsics": self.extrinsics.round(6).tolist(),
        }


def _look_at_quat(pos: np.ndarray, target: np.ndarray) -> np.ndarray:
    """MuJoCo (w, x, y, z) quaternion of a camera at ``pos`` looking at ``target``, world z up."""
    import mujoco

    fwd = target - pos
    fwd = fwd / np.linalg.norm(fwd)
    z = -fwd  # camera looks along -z
    x = np.cross(np.array([0.0, 0.0, 1.0]), z)
    if np.linalg.norm(x) < 1e-6:  # looking straight down: pick image right = world -y
        x = np.array([0.0, -1.0, 0.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    mat = np.stack([x, y, z], axis=1)  # columns are the camera axes in world coordinates
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, mat.flatten())
    return quat


def _loadable(*names: str) -> bool:
    import ctypes

    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def ensure_gl_backend() -> str:
    """Pick the offscreen GL backend before MuJoCo is imported.

    ``MUJOCO_GL`` wins if set. Otherwise EGL when ``libEGL`` loads, else OSMesa when ``libOSMesa`` loads
    (apt ``libosmesa6``). MuJoCo reads the variable once, at import: a process that imported ``mujoco``
    before this runs keeps whatever backend it got.
    """
    if "MUJOCO_GL" not in os.environ:
        if _loadable("libEGL.so.1", "libEGL.so"):
            os.environ["MUJOCO_GL"] = "egl"
        elif _loadable("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"):
            os.environ["MUJOCO_GL"] = "osmesa"
        else:
            os.environ["MUJOCO_GL"] = "egl"
    if os.environ["MUJOCO_GL"] == "osmesa":
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    elif os.environ["MUJOCO_GL"] == "egl":
        os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    return os.environ["MUJOCO_GL"]


class PrivilegedStateMixin:
    """What every simulated pick-and-place world derives from its positions and its camera.

    A world provides ``object_pos``, ``grip_pos``, ``target_pos``, ``finger_width``, ``object_half``,
    ``episode``, ``seed``, ``steps``, ``is_success()``, ``width``/``height``/``max_range``, ``camera``
    and ``self_filtered_depth()``; this adds grasp detection, the state dict and pixel grounding.
    """

    object_half: float
    episode: int
    seed: int | None
    steps: int
    width: int
    height: int
    max_range: float

    @property
    def camera(self) -> PinholeCamera:
        raise NotImplementedError

    def self_filtered_depth(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def grip_pos(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def object_pos(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def target_pos(self) -> np.ndarray:
        raise NotImplementedError

    @property
    def finger_width(self) -> float:
        raise NotImplementedError

    def is_success(self) -> bool:
        raise NotImplementedError

    def is_grasped(self) -> bool:
        """The block sits between nearly closed fingers (used to self-filter the held object)."""
        close = np.linalg.norm(self.object_pos - self.grip_pos) < 0.03
        return bool(close and self.finger_width < 2 * self.object_half + 0.01)

    def state(self) -> dict[str, Any]:
        """Privileged state as JSON-able floats (what an expert reads and the node publishes)."""
        return {
            "episode": self.episode,
            "seed": self.seed,
            "steps": self.steps,
            "grip_pos": self.grip_pos.round(5).tolist(),
            "finger_width": round(self.finger_width, 5),
            "object_pos": self.object_pos.round(5).tolist(),
            "target_pos": self.target_pos.round(5).tolist(),
            "object_half": self.object_half,
            "success": self.is_success(),
        }

    def point_to_world(self, point: Point, depth: np.ndarray | None = None) -> np.ndarray:
        """The world point seen at normalized ``point``, from the self-filtered depth image.

        Raises:
            ToolError: no depth there (background beyond ``max_range``).
        """
        d = self.self_filtered_depth() if depth is None else depth
        px, py = point.to_pixels(self.width, self.height)
        z = float(d[py, px])
        if not np.isfinite(z) or z <= 0 or z > self.max_range:
            raise ToolError(
                f"no depth at point ({point.x:.3f}, {point.y:.3f}): {z:.2f} m is beyond the "
                f"{self.max_range:.2f} m range of the camera"
            )
        return self.camera.deproject(point, z)


class FetchSim(PrivilegedStateMixin):
    """``FetchPickAndPlace-v4`` with a calibrated RGB-D camera, workspace bounds and a step counter.

    Not thread-safe: render and step from one thread (the event-loop thread in live runs).

    Example:
        >>> sim = FetchSim(width=320, height=240)
        >>> sim.reset(seed=0)
        >>> rgb, depth = sim.render()
        >>> xyz = sim.camera.deproject(Point(0.5, 0.5), float(depth[120, 160]))
    """

    name = "fetch"
    table_top_z = TABLE_TOP_Z
    object_half = OBJECT_HALF
    home_pos = HOME_POS

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        max_range: float = 1.6,
        workspace: Workspace | None = None,
    ) -> None:
        backend = ensure_gl_backend()
        try:
            import gymnasium as gym
            import gymnasium_robotics
            import mujoco
        except ImportError as e:  # pragma: no cover - depends on the install
            raise SourceError(
                f"the robot env needs gymnasium-robotics and mujoco==3.11.0 ({e}); pip install 'agentkit[robot]'"
            ) from None
        gym.register_envs(gymnasium_robotics)
        self._mj = mujoco
        self.env = self._make_env()  # no TimeLimit: episodes are bounded by our own step budget
        self.model = self.env.model
        self.data = self.env.data
        self.width, self.height = int(width), int(height)
        self.max_range = float(max_range)
        self.workspace = workspace or Workspace()
        self.steps = 0
        self.episode = -1
        self.seed: int | None = None
        self._edit_model()
        try:
            self._renderer = mujoco.Renderer(self.model, self.height, self.width)
        except Exception as e:
            first = str(e).splitlines()[0] if str(e) else type(e).__name__
            hint = "set MUJOCO_GL=egl (or osmesa, apt libosmesa6) before anything imports mujoco"
            raise SourceError(f"offscreen rendering failed with MUJOCO_GL={backend} ({first[:120]}); {hint}") from None
        self._opt_full = mujoco.MjvOption()
        self._opt_full.geomgroup[:] = 0
        for g in (0, 1, 2, ROBOT_GROUP):
            self._opt_full.geomgroup[g] = 1
        self._opt_self = mujoco.MjvOption()
        self._opt_self.geomgroup[:] = 0
        for g in (0, 1, 2):
            self._opt_self.geomgroup[g] = 1

    def _make_env(self) -> Any:
        """The unwrapped gymnasium-robotics env (a world with another scene overrides this)."""
        import gymnasium as gym

        return gym.make(ENV_ID).unwrapped

    # -- model edits -------------------------------------------------------------------------------
    def _edit_model(self) -> None:
        mj, m = self._mj, self.model
        cam = mj.mj_name2id(m, mj.mjtObj.mjOBJ_CAMERA, CAMERA_NAME)
        if cam < 0:
            raise SourceError(f"{ENV_ID} has no camera {CAMERA_NAME!r} to re-pose")
        self.cam_id = cam
        m.cam_bodyid[cam] = 0  # world body: a fixed camera that never moves with the robot base
        m.cam_mode[cam] = mj.mjtCamLight.mjCAMLIGHT_FIXED
        m.cam_pos[cam] = CAMERA_POS
        m.cam_quat[cam] = _look_at_quat(CAMERA_POS, CAMERA_LOOKAT)
        m.cam_fovy[cam] = CAMERA_FOVY
        self.object_body = mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, "object0")
        self.object_geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] == self.object_body]
        for g in self.object_geoms:
            m.geom_matid[g] = -1
            m.geom_rgba[g] = BLOCK_RGBA
        self.robot_geoms = []
        for g in range(m.ngeom):
            body = mj.mj_id2name(m, mj.mjtObj.mjOBJ_BODY, m.geom_bodyid[g]) or ""
            if body == "robot0:mocap":  # translucent 1 m axes that visualize the mocap target: not a thing
                m.geom_group[g] = HIDDEN_GROUP
                m.geom_rgba[g, 3] = 0.0
            elif body.startswith("robot0:"):
                m.geom_group[g] = ROBOT_GROUP
                self.robot_geoms.append(g)
        site = mj.mj_name2id(m, mj.mjtObj.mjOBJ_SITE, "object0")
        m.site_rgba[site] = (0, 0, 0, 0)  # the marker inside the block is not a thing a camera sees
        self.target_site = mj.mj_name2id(m, mj.mjtObj.mjOBJ_SITE, "target0")
        m.site_rgba[self.target_site] = (1.0, 0.0, 0.0, 1.0)

    # -- episode -----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """Start a new episode (seeded: the block and target positions follow from ``seed``)."""
        obs, _ = self.env.reset(seed=seed)
        self.steps = 0
        self.episode += 1
        self.seed = seed
        self._obs = obs
        self._sync_target()
        return obs

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        """One control step (20 physics steps, 0.04 s): ``action = [dx, dy, dz, grip]`` in [-1, 1]."""
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        obs, _, _, _, _ = self.env.step(a)
        self.steps += 1
        self._obs = obs
        return obs

    def _sync_target(self) -> None:
        # gymnasium-robotics moves the target marker only inside env.render(); do it on every reset.
        self.env._render_callback()
        self._mj.mj_forward(self.model, self.data)

    # -- privileged state (experts, evaluation; never the pixels policy) ------------------------------
    @property
    def grip_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.env._model_names.site_name2id["robot0:grip"]].copy()

    @property
    def object_pos(self) -> np.ndarray:
        return self.data.xpos[self.object_body].copy()

    @property
    def target_pos(self) -> np.ndarray:
        return np.asarray(self.env.goal, dtype=np.float64).copy()

    @property
    def finger_width(self) -> float:
        """Opening between the fingers (metres, sum of both finger joints)."""
        return float(self._obs["observation"][9] + self._obs["observation"][10])

    def is_success(self) -> bool:
        return bool(np.linalg.norm(self.object_pos - self.target_pos) < SUCCESS_DISTANCE)

    # -- camera ------------------------------------------------------------------------------------
    @property
    def dt(self) -> float:
        """Seconds of simulated time per control step."""
        return float(self.env.dt)

    @property
    def camera(self) -> PinholeCamera:
        R = self.data.cam_xmat[self.cam_id].reshape(3, 3).copy()
        t = self.data.cam_xpos[self.cam_id].copy()
        return PinholeCamera(self.width, self.height, float(self.model.cam_fovy[self.cam_id]), R, t)

    def render(self, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """RGB ``uint8 HxWx3`` and planar depth ``float32 HxW`` in metres of the full scene."""
        r = self._renderer
        r.update_scene(self.data, camera=self.cam_id, scene_option=self._opt_full)
        rgb = r.render().copy()
        d = None
        if depth:
            r.enable_depth_rendering()
            try:
                r.update_scene(self.data, camera=self.cam_id, scene_option=self._opt_full)
                d = r.render().astype(np.float32)
            finally:
                r.disable_depth_rendering()
        return rgb, d

    def self_filtered_depth(self) -> np.ndarray:
        """Depth with the robot and the object it holds removed (a robot self-filter), in metres."""
        r = self._renderer
        held = self._held_geoms()
        saved = self.model.geom_group[held].copy()
        self.model.geom_group[held] = HIDDEN_GROUP
        try:
            r.enable_depth_rendering()
            r.update_scene(self.data, camera=self.cam_id, scene_option=self._opt_self)
            return r.render().astype(np.float32)
        finally:
            r.disable_depth_rendering()
            self.model.geom_group[held] = saved

    def _held_geoms(self) -> list[int]:
        """Geoms of the object between the fingers, if any (hidden by the self-filter)."""
        return list(self.object_geoms) if self.is_grasped() else []

    def close(self) -> None:
        try:
            self._renderer.close()
        finally:
            self.env.close()
