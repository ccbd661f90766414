"""Cut an image into fixed-size overlapping tiles and blend the upscaled tiles back together.

Every tile has the same size, so tiles from different requests can share one batch in the
model. Overlaps are resolved either with raised-cosine weights (which sum to exactly one across
each overlap, so the blend is a partition of unity) or by a hard cut at the overlap's midline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BLEND_MODES = ("cosine", "none")


def axis_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile start offsets along one axis: a regular step, the last tile flush with the end."""
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile, tile - overlap))
    starts.append(length - tile)
    return starts


@dataclass(frozen=True)
class TileGrid:
    height: int  # the image's own size
    width: int
    tile: int
    ys: tuple[int, ...]  # tile row starts, in the padded image
    xs: tuple[int, ...]  # tile column starts

    @property
    def padded_height(self) -> int:
        return max(self.height, self.tile)

    @property
    def padded_width(self) -> int:
        return max(self.width, self.tile)

    @property
    def count(self) -> int:
        return len(self.ys) * len(self.xs)

    def positions(self) -> list[tuple[int, int]]:
        return [(y, x) for y in self.ys for x in self.xs]


def plan_tiles(height: int, width: int, tile: int, overlap: int) -> TileGrid:
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap {overlap} must be in [0, tile={tile})")
    ph, pw = max(height, tile), max(width, tile)
    return TileGrid(height, width, tile, tuple(axis_starts(ph, tile, overlap)), tuple(axis_starts(pw, tile, overlap)))


def fit_tile(height: int, width: int, tile: int, overlap: int, multiple: int = 16) -> int:
    """The smallest square tile side <= `tile` that covers the image with as many tiles as `tile`
    itself needs, keeping at least `overlap` between neighbours; rounded up to `multiple`.

    With the last tile flush with the edge, a fixed side wastes up to a whole tile of work per axis
    (256 px with tile 128 and overlap 16 takes 3x3 tiles, 2.25x the image). Shrinking the side to fit
    spreads the same count evenly (3x3 of 96: 1.27x). Rounding keeps the sizes few, so tiles of
    similar images still share batches.
    """

    def need(length: int) -> int:
        if length <= tile:
            return length
        n = -(-(length - overlap) // (tile - overlap))  # tiles this axis needs at the full side
        return -(-(length + (n - 1) * overlap) // n)

    side = -(-max(need(height), need(width)) // multiple) * multiple
    if max(height, width) <= tile:  # one tile: no neighbour to overlap (plan it with overlap 0)
        return min(tile, max(side, multiple))
    return min(tile, max(side, overlap + 1, multiple))


def cut_tiles(image: np.ndarray, grid: TileGrid, start: int = 0, stop: int | None = None) -> np.ndarray:
    """HxWxC image -> NxTxTxC tiles (tiles start..stop of the grid, default all). Images smaller
    than a tile are reflect-padded to it."""
    pad_h, pad_w = grid.padded_height - grid.height, grid.padded_width - grid.width
    if pad_h or pad_w:
        image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="symmetric")
    t = grid.tile
    return np.stack([image[y : y + t, x : x + t] for y, x in grid.positions()[start:stop]])


def _ramp(n: int) -> np.ndarray:
    """Rising raised-cosine ramp; ramp(n) + ramp(n)[::-1] == 1 elementwise."""
    k = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (k + 0.5) / n)


def axis_weights(starts: tuple[int, ...], tile: int, scale: int, blend: str, margin: int = 0) -> list[np.ndarray]:
    """Per-tile 1-D weights (output resolution) along one axis.

    margin: input pixels at each shared tile edge that get no weight in a cosine blend (they are
    context only: a model with a wide receptive field is least right there); the ramp spans the
    rest of the overlap, so the overlap must exceed 2 * margin."""
    size = tile * scale
    m = margin * scale
    weights = []
    for i, s in enumerate(starts):
        left = (starts[i - 1] + tile - s) * scale if i > 0 else 0  # overlap with previous tile
        right = (s + tile - starts[i + 1]) * scale if i + 1 < len(starts) else 0
        w = np.ones(size)
        if blend == "cosine":
            if left:
                w[:m] = 0
                w[m : left - m] *= _ramp(left - 2 * m)
            if right:
                w[size - right + m : size - m] *= _ramp(right - 2 * m)[::-1]
                w[size - m :] = 0
        elif blend == "none":
            w[: left // 2] = 0  # the previous tile owns up to the overlap's midline
            if right:
                w[size - right + right // 2 :] = 0
        else:
            raise ValueError(f"blend must be one of {BLEND_MODES}, got {blend!r}")
        weights.append(w)
    return weights


class TileBlender:
    """Blends upscaled tiles into the output as they arrive, so a large image never holds all of
    its upscaled tiles at once (at 4K x2: 144 tiles, 450 MB of float32).

    Tiles are added strictly in grid order whatever order their chunks arrive in (early ones wait
    in a small buffer): float sums then round the same way every time, so the output is
    bit-identical run to run.
    """

    def __init__(self, grid: TileGrid, scale: int, channels: int = 3, blend: str = "cosine", margin: int = 0):
        self.grid, self.scale = grid, scale
        self.wy = axis_weights(grid.ys, grid.tile, scale, blend, margin)
        self.wx = axis_weights(grid.xs, grid.tile, scale, blend, margin)
        self.out = np.zeros((grid.padded_height * scale, grid.padded_width * scale, channels), np.float32)
        self.wsum = np.zeros(self.out.shape[:2], np.float32)
        self.next = 0  # index of the next tile to blend
        self.waiting: dict[int, np.ndarray] = {}  # start index -> NxT'xT'xC chunk that came early

    def add(self, start: int, tiles: np.ndarray) -> None:
        """tiles: the upscaled tiles start, start+1, ... (NxT'xT'xC)."""
        self.waiting[start] = tiles
        while self.next in self.waiting:
            chunk = self.waiting.pop(self.next)
            for tile in chunk:
                self._blend_one(self.next, tile)
                self.next += 1

    def _blend_one(self, n: int, tile: np.ndarray) -> None:
        s, ts = self.scale, self.grid.tile * self.scale
        iy, ix = divmod(n, len(self.grid.xs))
        y, x = self.grid.ys[iy], self.grid.xs[ix]
        w = np.outer(self.wy[iy], self.wx[ix]).astype(np.float32)
        ys, xs = slice(y * s, y * s + ts), slice(x * s, x * s + ts)
        self.out[ys, xs] += tile * w[..., None]
        self.wsum[ys, xs] += w

    def result(self) -> np.ndarray:
        """(H*scale)x(W*scale)xC float32 image, once every tile has been added."""
        if self.next != self.grid.count:
            raise ValueError(f"{self.grid.count - self.next} of {self.grid.count} tiles not blended")
        self.out /= self.wsum[..., None]
        return self.out[: self.grid.height * self.scale, : self.grid.width * self.scale]


def blend_tiles(tiles: np.ndarray, grid: TileGrid, scale: int, blend: str = "cosine", margin: int = 0) -> np.ndarray:
    """NxT'xT'xC upscaled tiles (T' = tile*scale) -> (H*scale)x(W*scale)xC float32 image."""
    blender = TileBlender(grid, scale, tiles.shape[-1], blend, margin)
    blender.add(0, tiles)
    return blender.result()


def seam_lines(grid: TileGrid, scale: int, blend: str, margin: int = 0) -> tuple[list[int], list[int]]:
    """Output rows and columns where stitching could leave a visible step.

    A hard cut can only step at the midline it cuts; a cosine blend can only step where a tile's
    weight starts to rise in its neighbour (its edge, or `margin` pixels inside it). Each line b is the boundary between output pixels b-1 and b.
    """

    def lines(starts: tuple[int, ...], length: int) -> list[int]:
        found = set()
        for a, b in zip(starts, starts[1:]):
            shared = a + grid.tile - b
            if blend == "none":
                found.add(b * scale + shared * scale // 2)
            else:
                found.update(((b + margin) * scale, (a + grid.tile - margin) * scale))
        return sorted(v for v in found if 0 < v < length * scale)

    return lines(grid.ys, grid.height), lines(grid.xs, grid.width)
