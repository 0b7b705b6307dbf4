"""panda-gym's ``PandaPickAndPlace-v3`` (PyBullet) behind the same interface as :class:`FetchSim`.

Why: the primitives, tools, policies, evaluation and MQTT node are written against one small world
interface (``reset/step/render/camera/point_to_world`` plus the table/object/home geometry); a second
simulator behind it shows they do not depend on MuJoCo or on the Fetch arm.

Scene choices, made at runtime after loading (documented in docs/robot.md): a fixed camera over the far
edge of the table built from PyBullet's view/projection matrices (same OpenGL conventions as MuJoCo's, so
the same :class:`PinholeCamera`), the block coloured blue and the target cube red and opaque (panda-gym
draws both green, the target translucent). Rendering uses PyBullet's CPU TinyRenderer; the self-filtered
depth hides the robot (and a held block) by making them fully transparent for one render.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agentkit.envs.robot.fetch import BLOCK_RGBA, PinholeCamera, PrivilegedStateMixin, Workspace
from agentkit.errors import SourceError

ENV_ID = "PandaPickAndPlace-v3"
CAMERA_EYE = np.array([0.32, 0.0, 0.95])
CAMERA_LOOKAT = np.array([0.0, 0.0, 0.0])
CAMERA_FOVY = 42.0
NEAR, FAR = 0.05, 5.0
TARGET_RGBA = (1.0, 0.0, 0.0, 1.0)


class PandaSim(PrivilegedStateMixin):
    """``PandaPickAndPlace-v3`` with a calibrated RGB-D camera (see :class:`agentkit.envs.robot.fetch.FetchSim`)."""

    name = "panda"
    table_top_z = 0.0
    object_half = 0.02
    home_pos = np.array([-0.25, 0.0, 0.35])

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        max_range: float = 1.6,
        workspace: Workspace | None = None,
    ) -> None:
        try:
            import gymnasium as gym
            import panda_gym  # noqa: F401  (registers the Panda envs)
            import pybullet as pb
        except ImportError as e:  # pragma: no cover - depends on the install
            raise SourceError(f"the panda env needs panda-gym and pybullet ({e}); pip install panda-gym") from None
        self._pb = pb
        env: Any = gym.make(ENV_ID).unwrapped
        self.env = env
        self.sim = self.env.sim
        self.pc = self.sim.physics_client
        self.width, self.height = int(width), int(height)
        self.max_range = float(max_range)
        self.workspace = workspace or Workspace(lo=(-0.32, -0.32, -0.005), hi=(0.32, 0.32, 0.55))
        self.steps = 0
        self.episode = -1
        self.seed: int | None = None
        self._obs: dict[str, np.ndarray] = {}
        ids = self.sim._bodies_idx
        self.robot_id, self.object_id, self.target_id = ids["panda"], ids["object"], ids["target"]
        self.pc.changeVisualShape(self.object_id, -1, rgbaColor=list(BLOCK_RGBA))
        self.pc.changeVisualShape(self.target_id, -1, rgbaColor=list(TARGET_RGBA))
        self._robot_rgba = {d[1]: list(d[7]) for d in self.pc.getVisualShapeData(self.robot_id)}
        self._view = self.pc.computeViewMatrix(CAMERA_EYE.tolist(), CAMERA_LOOKAT.tolist(), [-1.0, 0.0, 0.0])
        self._proj = self.pc.computeProjectionMatrixFOV(CAMERA_FOVY, self.width / self.height, NEAR, FAR)
        # camera-to-world from the view matrix (column-major world-to-camera, OpenGL axes)
        V = np.asarray(self._view, dtype=np.float64).reshape(4, 4).T
        self._R_wc = V[:3, :3].T.copy()
        self._t_wc = -self._R_wc @ V[:3, 3]

    # -- episode -----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        obs, _ = self.env.reset(seed=seed)
        self.steps = 0
        self.episode += 1
        self.seed = seed
        self._obs = obs
        return obs

    def step(self, action: np.ndarray) -> dict[str, np.ndarray]:
        a = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        obs, _, _, _, _ = self.env.step(a)
        self.steps += 1
        self._obs = obs
        return obs

    @property
    def dt(self) -> float:
        return float(self.sim.dt)

    # -- privileged state --------------------------------------------------------------------------
    @property
    def grip_pos(self) -> np.ndarray:
        return np.asarray(self.env.robot.get_ee_position(), dtype=np.float64).copy()

    @property
    def object_pos(self) -> np.ndarray:
        return np.asarray(self.sim.get_base_position("object"), dtype=np.float64).copy()

    @property
    def target_pos(self) -> np.ndarray:
        return np.asarray(self.env.task.goal, dtype=np.float64).copy()

    @property
    def finger_width(self) -> float:
        return float(self.env.robot.get_fingers_width())

    def is_success(self) -> bool:
        return bool(np.linalg.norm(self.object_pos - self.target_pos) < self.env.task.distance_threshold)

    # -- camera ------------------------------------------------------------------------------------
    @property
    def camera(self) -> PinholeCamera:
        return PinholeCamera(self.width, self.height, CAMERA_FOVY, self._R_wc, self._t_wc)

    def _grab(self) -> tuple[np.ndarray, np.ndarray]:
        _, _, rgba, depth, _ = self.pc.getCameraImage(
            self.width, self.height, self._view, self._proj, renderer=self._pb.ER_TINY_RENDERER
        )
        rgb = np.asarray(rgba, dtype=np.uint8).reshape(self.height, self.width, 4)[:, :, :3].copy()
        d = np.asarray(depth, dtype=np.float64).reshape(self.height, self.width)
        z = (FAR * NEAR / (FAR - (FAR - NEAR) * d)).astype(np.float32)  # OpenGL depth buffer -> metres
        z[d >= 1.0] = np.inf
        return rgb, z

    def render(self, depth: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        rgb, z = self._grab()
        return rgb, (z if depth else None)

    def self_filtered_depth(self) -> np.ndarray:
        held = self.is_grasped()
        try:
            for link in self._robot_rgba:
                self.pc.changeVisualShape(self.robot_id, link, rgbaColor=[0, 0, 0, 0])
            if held:
                self.pc.changeVisualShape(self.object_id, -1, rgbaColor=[0, 0, 0, 0])
            return self._grab()[1]
        finally:
            for link, rgba in self._robot_rgba.items():
                self.pc.changeVisualShape(self.robot_id, link, rgbaColor=rgba)
            self.pc.changeVisualShape(self.object_id, -1, rgbaColor=list(BLOCK_RGBA))

    def close(self) -> None:
        self.env.close()
