"""OpenCV's HOG people detector re-implemented with NumPy and OpenCV core filters.

Why: OpenCV 5 moved ``HOGDescriptor`` to opencv-contrib, and a project that also installs a package pulling
plain ``opencv-python`` (rapidocr does) can end up with a ``cv2`` without it, depending on install order.
This module computes the same descriptor as ``cv2.HOGDescriptor()`` with its defaults (64x128 window,
16x16 blocks, 8x8 cells and block stride, 9 unsigned orientation bins, Gaussian block window sigma 4,
L2-Hys, gamma correction) and scores it with the same SVM weights (:mod:`.hog_svm`), then groups windows
the way ``HOGDescriptor::groupRectangles`` does. The test suite checks it against OpenCV's where both exist.

Block histograms are computed for every block position at once: the orientation-binned gradient
magnitudes (9 channels) are correlated with the four separable kernels "Gaussian window x bilinear
weight of cell (cx, cy)", and the windows' SVM scores are sums of per-block dot products.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from agentkit.policies.detector.hog_svm import people_svm

WIN_W, WIN_H = 64, 128
BLOCK = 16
CELL = 8
NBINS = 9
SIGMA = (BLOCK + BLOCK) / 8.0
L2HYS = 0.2
BLOCKS_X = (WIN_W - BLOCK) // CELL + 1  # 7
BLOCKS_Y = (WIN_H - BLOCK) // CELL + 1  # 15

_SQRT_LUT = np.sqrt(np.arange(256, dtype=np.float32))


def _cell_weights() -> tuple[np.ndarray, np.ndarray]:
    """1-D weights over a block's 16 pixel positions for its cell 0 and cell 1: Gaussian x bilinear.

    A block's 2x2 cells use the separable kernels ``w[cx] (x) w[cy]``, in OpenCV's order (cell x outer).
    """
    pos = np.arange(BLOCK, dtype=np.float64)
    gauss = np.exp(-((pos - BLOCK * 0.5) ** 2) / (2 * SIGMA * SIGMA))  # OpenCV centres it at 8, not 7.5
    cell = (pos + 0.5) / CELL - 0.5
    c0 = np.floor(cell)
    frac = cell - c0
    out = []
    for c in (0, 1):
        wgt = np.where(c0 == c, 1.0 - frac, 0.0) + np.where(c0 + 1 == c, frac, 0.0)
        out.append((gauss * wgt).astype(np.float32))
    return out[0], out[1]


_CELL_W = _cell_weights()
_CELLS = [(cx, cy) for cx in (0, 1) for cy in (0, 1)]


def binned_gradients(gray: np.ndarray) -> np.ndarray:
    """HxWx9 float32: each pixel's gradient magnitude split between its two nearest orientation bins."""
    img = _SQRT_LUT[gray]  # gamma correction
    p = cv2.copyMakeBorder(img, 1, 1, 1, 1, cv2.BORDER_REFLECT_101)
    dx = p[1:-1, 2:] - p[1:-1, :-2]
    dy = p[2:, 1:-1] - p[:-2, 1:-1]
    mag, ang = cv2.cartToPolar(dx, dy)  # radians in [0, 2 pi), as OpenCV's HOG computes them
    ang = ang * (NBINS / np.pi) - 0.5
    lo = np.floor(ang)
    frac = ang - lo
    lo = lo.astype(np.int32) % NBINS
    hi = (lo + 1) % NBINS
    h, w = gray.shape
    base = np.arange(h * w, dtype=np.int32) * NBINS
    out = np.zeros(h * w * NBINS, np.float32)
    out[base + lo.ravel()] = (mag * (1.0 - frac)).ravel()  # lo != hi: plain assignment, no accumulation
    out[base + hi.ravel()] = (mag * frac).ravel()
    return out.reshape(h, w, NBINS)


def block_features(gray: np.ndarray, stride: int) -> np.ndarray:
    """L2-Hys normalized 36-d histograms of every 16x16 block whose top-left is on a ``stride`` grid.

    Returns an array of shape ``(ny, nx, 36)``; entry ``[i, j]`` is the block at ``(j*stride, i*stride)``.
    """
    binned = binned_gradients(gray)
    h, w = gray.shape
    ny = (h - BLOCK) // stride + 1
    nx = (w - BLOCK) // stride + 1
    # The separable kernels evaluated only where blocks start: a row pass per cell column at the block
    # columns, then a column pass per cell at the block rows (all 9 bins at once).
    span_x, span_y = (nx - 1) * stride + 1, (ny - 1) * stride + 1
    rows = []
    for wx in _CELL_W:
        acc = np.zeros((h, nx, NBINS), np.float32)
        for u in np.flatnonzero(wx):
            acc += wx[u] * binned[:, u : u + span_x : stride]
        rows.append(acc)
    cells = []
    for cx, cy in _CELLS:
        wy = _CELL_W[cy]
        acc = np.zeros((ny, nx, NBINS), np.float32)
        for v in np.flatnonzero(wy):
            acc += wy[v] * rows[cx][v : v + span_y : stride]
        cells.append(acc)
    feats = np.concatenate(cells, axis=-1)  # (ny, nx, 36): cell-major, bin-minor, as in OpenCV
    sz = feats.shape[-1]
    norm = np.sqrt((feats * feats).sum(-1, keepdims=True))
    feats = np.minimum(feats / (norm + 0.1 * sz), L2HYS)
    norm = np.sqrt((feats * feats).sum(-1, keepdims=True))
    return feats / (norm + 1e-3)


def window_descriptor(gray: np.ndarray) -> np.ndarray:
    """The 3780-d descriptor of one 64x128 window, in ``cv2.HOGDescriptor().compute`` order."""
    if gray.shape != (WIN_H, WIN_W):
        raise ValueError(f"window must be {WIN_H}x{WIN_W}, got {gray.shape}")
    f = block_features(gray, CELL)  # (15, 7, 36)
    return f.transpose(1, 0, 2).reshape(-1)  # blocks x-major, as OpenCV lays them out


class NumpyHog:
    """``detectMultiScale`` of OpenCV's default people detector, without ``cv2.HOGDescriptor``."""

    def __init__(self) -> None:
        svm = people_svm()
        w = svm[:-1].reshape(BLOCKS_X, BLOCKS_Y, 4 * NBINS)  # [block x, block y, 36]
        self._slots = [(bx, by) for bx in range(BLOCKS_X) for by in range(BLOCKS_Y)]
        self._w_all = np.ascontiguousarray(np.stack([w[bx, by] for bx, by in self._slots], axis=1))  # (36, 105)
        self._rho = float(svm[-1])

    def scores(self, gray: np.ndarray, stride: int) -> np.ndarray:
        """SVM score of every window whose top-left lies on a ``stride`` grid (``stride`` divides 8)."""
        if CELL % stride:
            raise ValueError(f"stride must divide {CELL}, got {stride}")
        feats = block_features(gray, stride)
        step = CELL // stride
        ny = feats.shape[0] - (BLOCKS_Y - 1) * step
        nx = feats.shape[1] - (BLOCKS_X - 1) * step
        if ny <= 0 or nx <= 0:
            return np.zeros((0, 0), np.float32)
        # One matmul gives every block's dot product with every window slot's weights; a window's score is
        # the sum of its 105 slots, read at the right offsets.
        per_slot = feats @ self._w_all  # (fy, fx, 105)
        out = np.full((ny, nx), self._rho, np.float32)
        for k, (bx, by) in enumerate(self._slots):
            out += per_slot[by * step : by * step + ny, bx * step : bx * step + nx, k]
        return out

    def detect_multiscale(
        self,
        gray: np.ndarray,
        hit_threshold: float = 0.0,
        win_stride: int = 8,
        scale: float = 1.05,
        group_threshold: int = 2,
        nlevels: int = 64,
    ) -> tuple[list[tuple[int, int, int, int]], list[float]]:
        """Rectangles ``(x, y, w, h)`` and weights, like ``HOGDescriptor.detectMultiScale`` with padding 0."""
        h, w = gray.shape
        rects: list[tuple[int, int, int, int]] = []
        weights: list[float] = []
        s = 1.0
        for _ in range(nlevels):
            sw, sh = round(w / s), round(h / s)
            if sw < WIN_W or sh < WIN_H:
                break
            img = gray if s == 1.0 else cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR_EXACT)
            sc = self.scores(img, win_stride)
            ys, xs = np.nonzero(sc >= hit_threshold)
            for y, x in zip(ys.tolist(), xs.tolist(), strict=True):
                rects.append((round(x * win_stride * s), round(y * win_stride * s), round(WIN_W * s), round(WIN_H * s)))
                weights.append(float(sc[y, x]))
            s *= scale
        return group_rectangles(rects, weights, group_threshold, 0.2)


def _similar(a: tuple[int, int, int, int], b: tuple[int, int, int, int], eps: float) -> bool:
    delta = eps * (min(a[2], b[2]) + min(a[3], b[3])) * 0.5
    return (
        abs(a[0] - b[0]) <= delta
        and abs(a[1] - b[1]) <= delta
        and abs(a[0] + a[2] - b[0] - b[2]) <= delta
        and abs(a[1] + a[3] - b[1] - b[3]) <= delta
    )


def group_rectangles(
    rects: list[tuple[int, int, int, int]], weights: list[float], group_threshold: int, eps: float
) -> tuple[list[tuple[int, int, int, int]], list[float]]:
    """Cluster similar rectangles, keep clusters of more than ``group_threshold``, average them.

    Like ``HOGDescriptor::groupRectangles``: the weight of a cluster is its best member's, and a cluster
    lying inside a bigger, better supported one is dropped.
    """
    n = len(rects)
    if group_threshold <= 0 or n == 0:
        return list(rects), list(weights)
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(i + 1, n):
            if _similar(rects[i], rects[j], eps):
                ri, rj = find(i), find(j)
                if ri != rj:
                    parent[rj] = ri
    clusters: dict[int, list[int]] = {}
    for i in range(n):
        clusters.setdefault(find(i), []).append(i)
    groups = []
    for members in clusters.values():
        k = len(members)
        avg = [sum(rects[m][c] for m in members) / k for c in range(4)]
        groups.append((tuple(round(v) for v in avg), k, max(weights[m] for m in members)))
    out_r: list[tuple[int, int, int, int]] = []
    out_w: list[float] = []
    for i, (r1, n1, w1) in enumerate(groups):
        if n1 <= group_threshold:
            continue
        inside = False
        for j, (r2, n2, _) in enumerate(groups):
            if j == i or n2 <= group_threshold:
                continue
            dx, dy = math.floor(r2[2] * eps + 0.5), math.floor(r2[3] * eps + 0.5)
            if (
                r1[0] >= r2[0] - dx
                and r1[1] >= r2[1] - dy
                and r1[0] + r1[2] <= r2[0] + r2[2] + dx
                and r1[1] + r1[3] <= r2[1] + r2[3] + dy
                and (n2 > max(3, n1) or n1 < 3)
            ):
                inside = True
                break
        if not inside:
            out_r.append(r1)  # type: ignore[arg-type]
            out_w.append(w1)
    return out_r, out_w
