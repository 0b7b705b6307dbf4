"""A harder Fetch world: 2-4 blocks of different colours and shapes, and an instruction naming one.

Why this module exists: in the single-block world (:mod:`agentkit.envs.robot.fetch`) there is nothing to
understand — the only blue thing goes on the only red thing. Here the camera sees two to four blocks
(cubes and cylinders in distinct colours) and a magenta target, and the episode's instruction says which
block goes on the target ("put the green cylinder on the target"). A policy has to read the instruction
and ground it in the image; the scripted expert and the colour heuristic get the same text.

How the scene is built: gymnasium-robotics loads ``fetch/pick_and_place.xml`` from its own assets. This
module writes a copy with the block body ``object0`` replaced by ``MAX_BLOCKS`` bodies ``object0..3``
(each with a free joint, a box geom and a cylinder geom, one of them switched off per episode) into a
temporary folder, with the includes and mesh/texture folders pointing back at the installed assets, and
hands that file to gymnasium-robotics' own ``MujocoFetchPickAndPlaceEnv`` machinery (same robot, same
controller, same 0.04 s control step). The XML lives only while MuJoCo compiles it.

Per episode, everything follows from the seed (``env.np_random`` after gymnasium's own reset): the number
of blocks, their colours, shapes and positions (on the table, inside the region where the stock Fetch
task puts its block, at least ``MIN_GAP`` apart so the open fingers fit between them), which one is named,
the instruction's wording, and the target (the stock distribution — on the table or up to 45 cm in the air
— kept ``MIN_GAP`` away from every block in the plane, inside the image and never in front of a block in
it). Visibility is checked with the camera at 320x240, so a seed gives the same scene at any render size.
Unused bodies are parked on the floor behind the camera and hidden. Success is the *named* block within
5 cm of the target; ``object_pos`` is the named block, so code written for the single-block world keeps
working.
"""

from __future__ import annotations

import re
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agentkit.envs.robot.fetch import (
    BLOCK_RGBA,
    HIDDEN_GROUP,
    OBJECT_HALF,
    SUCCESS_DISTANCE,
    FetchSim,
    PinholeCamera,
    Workspace,
)
from agentkit.errors import ConfigError, SourceError

MAX_BLOCKS = 4
# Block colours: hues far apart (OpenCV H ~0 / 60 / 120 / 30) and saturated well above the green skybox.
COLOURS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.90, 0.06, 0.06, 1.0),
    "green": (0.06, 0.72, 0.10, 1.0),
    "blue": BLOCK_RGBA,
    "yellow": (0.95, 0.80, 0.04, 1.0),
}
SHAPES = ("cube", "cylinder")
TARGET_COLOUR = "magenta"  # no block has it (the single-block world's target is red)
TARGET_RGBA = (0.85, 0.05, 0.85, 1.0)
MIN_GAP = 0.11  # metres between block centres (and target to block), in the table plane: open fingers fit
GRIPPER_CLEAR = 0.10  # blocks start this far (in the plane) from the gripper's start, as in the stock task
VIEW = (320, 240)  # scenes are checked for visibility at this size, so a seed gives one scene at any render size
EDGE_PX = 8  # a block's top stays this far inside the image
TARGET_RADIUS = 0.02  # the target0 sphere
PARK = np.array([2.6, 0.30, OBJECT_HALF])  # unused blocks: on the floor behind the camera, hidden, 10 cm apart
TEMPLATES = (
    "put the {block} on the target",
    "place the {block} on the target",
    "move the {block} onto the target",
)
SHAPE_WORDS = {"cube": "cube", "cubes": "cube", "box": "cube", "cylinder": "cylinder", "cylinders": "cylinder"}


@dataclass(frozen=True)
class BlockQuery:
    """What an instruction says about the block to move (``None``: not said)."""

    colour: str | None = None
    shape: str | None = None

    def matches(self, colour: str, shape: str) -> bool:
        return (self.colour in (None, colour)) and (self.shape in (None, shape))


def parse_instruction(text: str) -> BlockQuery:
    """The block an instruction names: its first block colour word and shape word, if any.

    Example:
        >>> parse_instruction("Put the yellow cylinder on the target")
        BlockQuery(colour='yellow', shape='cylinder')
        >>> parse_instruction("put the block on the target")
        BlockQuery(colour=None, shape=None)
    """
    words = re.findall(r"[a-z]+", text.lower())
    colour = next((w for w in words if w in COLOURS), None)
    shape = next((SHAPE_WORDS[w] for w in words if w in SHAPE_WORDS), None)
    return BlockQuery(colour, shape)


@dataclass(frozen=True)
class Block:
    """One block of the episode: its body, colour and shape (its position is read from the simulation)."""

    name: str  # the MuJoCo body, object0..3
    colour: str
    shape: str


def _park(i: int) -> np.ndarray:
    """Where unused block ``i`` rests: on the floor behind the camera (out of its view), hidden."""
    return PARK + np.array([0.0, 0.1 * i, 0.0])


def _scene_xml(assets: Path) -> str:
    """``pick_and_place.xml`` with ``MAX_BLOCKS`` two-shape block bodies and absolute asset paths."""
    root = ET.parse(assets / "fetch" / "pick_and_place.xml").getroot()
    compiler = root.find("compiler")
    if compiler is None:
        raise SourceError("pick_and_place.xml has no <compiler> element")
    compiler.set("meshdir", str((assets / "stls" / "fetch").resolve()))
    compiler.set("texturedir", str((assets / "textures").resolve()))
    for inc in root.iter("include"):
        inc.set("file", str((assets / "fetch" / inc.get("file", "")).resolve()))
    world = root.find("worldbody")
    old = None if world is None else world.find("body[@name='object0']")
    if world is None or old is None:
        raise SourceError("pick_and_place.xml has no body 'object0' to replace")
    index = list(world).index(old)
    world.remove(old)
    h = OBJECT_HALF
    inertia = 2.0 * (2 * h) ** 2 / 6  # a 2 kg cube of side 2h, as the stock block
    for i in reversed(range(MAX_BLOCKS)):
        body = ET.Element("body", name=f"object{i}", pos=" ".join(f"{v:.4f}" for v in _park(i)))
        ET.SubElement(body, "joint", name=f"object{i}:joint", type="free", damping="0.01")
        ET.SubElement(body, "inertial", pos="0 0 0", mass="2", diaginertia=f"{inertia} {inertia} {inertia}")
        ET.SubElement(body, "geom", name=f"object{i}", type="box", size=f"{h} {h} {h}", condim="3")
        ET.SubElement(body, "geom", name=f"object{i}:cylinder", type="cylinder", size=f"{h} {h}", condim="3")
        ET.SubElement(body, "site", name=f"object{i}", pos="0 0 0", size="0.02", rgba="0 0 0 0", type="sphere")
        world.insert(index, body)
    return ET.tostring(root, encoding="unicode")


def _inside(view: PinholeCamera, xyz: np.ndarray, margin_px: float) -> bool:
    """``xyz`` projects into ``view`` at least ``margin_px`` from every edge."""
    try:
        pt, _ = view.project(xyz)
    except ValueError:
        return False
    u, v = pt.x * view.width, pt.y * view.height
    return margin_px <= u <= view.width - margin_px and margin_px <= v <= view.height - margin_px


class FetchMultiSim(FetchSim):
    """Fetch with 2-4 coloured cubes/cylinders and a seeded instruction naming the one to put on the target.

    Everything of :class:`FetchSim` holds (camera, workspace, primitives, self-filtered depth); in addition
    ``instruction`` (after :meth:`reset`), ``blocks`` (this episode's blocks), ``named`` (the block the
    instruction names) and :meth:`block_pos`.

    Example:
        >>> sim = FetchMultiSim()
        >>> _ = sim.reset(seed=5002)
        >>> sim.instruction, [(b.colour, b.shape) for b in sim.blocks]
        ('put the yellow cylinder on the target', [('yellow', 'cylinder'), ('blue', 'cylinder')])
    """

    name = "fetch-multi"

    def __init__(
        self,
        width: int = 320,
        height: int = 240,
        max_range: float = 1.6,
        workspace: Workspace | None = None,
        min_blocks: int = 2,
        max_blocks: int = MAX_BLOCKS,
    ) -> None:
        if not 1 <= min_blocks <= max_blocks <= MAX_BLOCKS:
            raise ConfigError(
                f"fetch-multi: need 1 <= min_blocks <= max_blocks <= {MAX_BLOCKS}, "
                f"got min_blocks={min_blocks}, max_blocks={max_blocks}"
            )
        self.min_blocks, self.max_blocks = int(min_blocks), int(max_blocks)
        self.blocks: list[Block] = []
        self.named: Block | None = None
        self.instruction = ""
        super().__init__(width, height, max_range, workspace)

    # -- scene -------------------------------------------------------------------------------------
    def _make_env(self) -> Any:
        import gymnasium_robotics
        from gymnasium_robotics.envs.fetch import MujocoFetchEnv
        from gymnasium_robotics.envs.fetch.pick_and_place import MujocoFetchPickAndPlaceEnv

        assets = Path(gymnasium_robotics.__file__).parent / "envs" / "assets"
        with tempfile.TemporaryDirectory(prefix="agentkit-fetch-multi-") as tmp:
            path = Path(tmp) / "pick_and_place_multi.xml"
            path.write_text(_scene_xml(assets))
            env = MujocoFetchPickAndPlaceEnv.__new__(MujocoFetchPickAndPlaceEnv)
            # the stock task's arguments (gymnasium-robotics 1.4, FetchPickAndPlace-v4), our scene file
            MujocoFetchEnv.__init__(
                env,
                model_path=str(path),
                has_object=True,
                block_gripper=False,
                n_substeps=20,
                gripper_extra_height=0.2,
                target_in_the_air=True,
                target_offset=0.0,
                obj_range=0.15,
                target_range=0.15,
                distance_threshold=SUCCESS_DISTANCE,
                initial_qpos={
                    "robot0:slide0": 0.405,
                    "robot0:slide1": 0.48,
                    "robot0:slide2": 0.0,
                    "object0:joint": [1.25, 0.53, 0.4, 1.0, 0.0, 0.0, 0.0],
                },
                reward_type="sparse",
            )
        return env

    def _edit_model(self) -> None:
        super()._edit_model()
        mj, m = self._mj, self.model
        self.block_bodies = [mj.mj_name2id(m, mj.mjtObj.mjOBJ_BODY, f"object{i}") for i in range(MAX_BLOCKS)]
        self.block_geoms: dict[str, dict[str, int]] = {}
        self.block_joints: dict[str, int] = {}
        for i in range(MAX_BLOCKS):
            name = f"object{i}"
            self.block_geoms[name] = {
                "cube": mj.mj_name2id(m, mj.mjtObj.mjOBJ_GEOM, name),
                "cylinder": mj.mj_name2id(m, mj.mjtObj.mjOBJ_GEOM, f"{name}:cylinder"),
            }
            self.block_joints[name] = mj.mj_name2id(m, mj.mjtObj.mjOBJ_JOINT, f"{name}:joint")
            site = mj.mj_name2id(m, mj.mjtObj.mjOBJ_SITE, name)
            m.site_rgba[site] = (0, 0, 0, 0)
            for g in self.block_geoms[name].values():
                m.geom_matid[g] = -1
        m.site_rgba[self.target_site] = TARGET_RGBA
        # gymnasium-robotics sizes the offscreen buffer to its own 480x480 default: let any render size fit
        m.vis.global_.offwidth = max(int(m.vis.global_.offwidth), self.width)
        m.vis.global_.offheight = max(int(m.vis.global_.offheight), self.height)
        self._show(None)

    def _show(self, layout: dict[str, Block] | None) -> None:
        """Switch geoms: each block in ``layout`` as its shape and colour; everything else hidden, inert."""
        m = self.model
        for name, geoms in self.block_geoms.items():
            block = (layout or {}).get(name)
            for shape, g in geoms.items():
                on = block is not None and block.shape == shape
                parked_box = block is None and shape == "cube"  # a parked body still rests on the floor
                m.geom_contype[g] = m.geom_conaffinity[g] = 1 if (on or parked_box) else 0
                m.geom_group[g] = 0 if on else HIDDEN_GROUP
                m.geom_rgba[g] = COLOURS[block.colour] if (on and block is not None) else (0, 0, 0, 0)

    # -- episode -----------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> dict[str, np.ndarray]:
        """A new episode: blocks, colours, shapes, positions, the named block and the target from ``seed``."""
        self.env.reset(seed=seed)
        rng = self.env.np_random
        env = self.env
        n = int(rng.integers(self.min_blocks, self.max_blocks + 1))
        colours = [str(c) for c in rng.permutation(list(COLOURS))[:n]]
        shapes = [SHAPES[int(rng.integers(len(SHAPES)))] for _ in range(n)]
        self.blocks = [Block(f"object{i}", colours[i], shapes[i]) for i in range(n)]
        self.named = self.blocks[int(rng.integers(n))]
        words = self.named.shape if rng.uniform() < 0.5 else "block"
        template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
        self.instruction = template.format(block=f"{self.named.colour} {words}")
        centre = np.asarray(env.initial_gripper_xpos[:2], dtype=float)
        view = self._view()
        xy = self._layout(rng, centre, n, view)
        goal = self._goal(rng, centre, xy, view)
        # positions: every block on the table (z from the stock task's height_offset), the rest parked
        data = self.data
        for i in range(MAX_BLOCKS):
            adr = int(self.model.jnt_qposadr[self.block_joints[f"object{i}"]])
            pos = np.array([*xy[i], env.height_offset]) if i < n else _park(i)
            data.qpos[adr : adr + 7] = [*pos, 1.0, 0.0, 0.0, 0.0]
            vadr = int(self.model.jnt_dofadr[self.block_joints[f"object{i}"]])
            data.qvel[vadr : vadr + 6] = 0.0
        self._show({b.name: b for b in self.blocks})
        env.goal = goal
        self._mj.mj_forward(self.model, data)
        obs = env._get_obs()
        self.steps = 0
        self.episode += 1
        self.seed = seed
        self._obs = obs
        self._sync_target()
        return obs

    def _view(self) -> PinholeCamera:
        """The fixed camera at the canonical ``VIEW`` size."""
        cam = self.camera
        return PinholeCamera(VIEW[0], VIEW[1], cam.fovy_deg, cam.R_wc, cam.t_wc)

    def _top(self, xy: np.ndarray) -> np.ndarray:
        """Centre of the top face of a block resting at ``xy``."""
        return np.array([*xy, self.env.height_offset + OBJECT_HALF])

    def _layout(
        self, rng: np.random.Generator, centre: np.ndarray, n: int, view: PinholeCamera, obj_range: float = 0.15
    ) -> np.ndarray:
        """``n`` block positions in the stock task's region, ``MIN_GAP`` apart, clear of the gripper, in view."""
        for _ in range(1000):
            pts: list[np.ndarray] = []
            for _ in range(200):
                p = centre + rng.uniform(-obj_range, obj_range, size=2)
                if np.linalg.norm(p - centre) < GRIPPER_CLEAR or not _inside(view, self._top(p), EDGE_PX):
                    continue
                if all(np.linalg.norm(p - q) >= MIN_GAP for q in pts):
                    pts.append(p)
                    if len(pts) == n:
                        return np.array(pts)
        raise SourceError(f"fetch-multi: could not place {n} blocks {MIN_GAP} m apart")  # pragma: no cover

    def _goal(
        self,
        rng: np.random.Generator,
        centre: np.ndarray,
        xy: np.ndarray,
        view: PinholeCamera,
        target_range: float = 0.15,
    ) -> np.ndarray:
        """The stock goal distribution (table or up to 45 cm above it), ``MIN_GAP`` from all blocks in the plane,
        in view, and never in front of a block in the image (a floating target could hide it)."""
        env = self.env
        f = view.focal
        tops = [view.project(self._top(p)) for p in xy]
        for _ in range(1000):
            goal = np.array([*(centre + rng.uniform(-target_range, target_range, size=2)), env.height_offset])
            if rng.uniform() < 0.5:
                goal[2] += rng.uniform(0, 0.45)
            if any(np.linalg.norm(goal[:2] - p) < MIN_GAP for p in xy) or not _inside(view, goal, EDGE_PX):
                continue
            pt, depth = view.project(goal)
            clear = all(
                np.hypot((pt.x - q.x) * view.width, (pt.y - q.y) * view.height)
                > f * TARGET_RADIUS / depth + f * 1.6 * OBJECT_HALF / d + 2
                for q, d in tops
            )
            if clear:
                return goal
        raise SourceError("fetch-multi: could not place the target clear of the blocks")  # pragma: no cover

    # -- privileged state --------------------------------------------------------------------------
    def block_pos(self, name: str) -> np.ndarray:
        """World position (body centre) of block ``name`` (``object0..3``)."""
        return self.data.xpos[self.block_bodies[int(name.removeprefix("object"))]].copy()

    @property
    def object_pos(self) -> np.ndarray:
        """The named block's centre (what ``is_success`` and single-block code read)."""
        return self.block_pos(self.named.name if self.named is not None else "object0")

    def held_block(self) -> Block | None:
        """The block between nearly closed fingers, if any."""
        if self.finger_width >= 2 * self.object_half + 0.01:
            return None
        grip = self.grip_pos
        for b in self.blocks:
            if np.linalg.norm(self.block_pos(b.name) - grip) < 0.03:
                return b
        return None

    def is_grasped(self) -> bool:
        """Some block (not necessarily the named one) sits between nearly closed fingers."""
        return self.held_block() is not None

    def _held_geoms(self) -> list[int]:
        held = self.held_block()
        return [] if held is None else list(self.block_geoms[held.name].values())

    def state(self) -> dict[str, Any]:
        """The single-block state (``object_pos`` = the named block) plus every block and the instruction."""
        out = super().state()
        out["blocks"] = [
            {"name": b.name, "colour": b.colour, "shape": b.shape, "pos": self.block_pos(b.name).round(5).tolist()}
            for b in self.blocks
        ]
        out["named"] = self.named.name if self.named is not None else None
        out["instruction"] = self.instruction
        out["target_colour"] = TARGET_COLOUR
        return out
