"""Bring-your-own inpainting ONNX: a small spec of the model's conventions and a pure adapter.

retouch's canonical inpainting contract: IMAGE float32 [N,3,H,W] RGB in [0,1], MASK float32
[N,1,H,W] with 1 = hole (soft values allowed), OUTPUT like IMAGE, known pixels unchanged. A foreign
model (LaMa, MI-GAN, your own) declares how it differs in a JSON spec beside its model.onnx:

    {
      "format": "retouch-inpaint-spec/1",
      "image_input": "image", "mask_input": "mask", "output": "output",
      "layout": "NCHW",              NCHW or NHWC, for image, mask and output alike
      "channel_order": "RGB",        RGB or BGR
      "image_range": "0..1",         0..1, -1..1 or 0..255; "image_dtype": float32 or uint8
      "output_range": "0..1",        the same choices; the output's dtype is read from the array
      "mask_hole_value": 1,          what the model reads as hole ...
      "mask_known_value": 0,         ... and as known (e.g. 0 and 1 for an inverted mask, 255 and 0)
      "mask_dtype": "float32",       float32 or uint8
      "mask_channels": 1,            1 or 3
      "mask_threshold": 0.5,         binarise the (resized) canonical mask at this value, or null: soft
      "size": [512, 512],            fixed [H, W] the model was exported at, or null: dynamic
      "size_multiple": 8,            dynamic models: H and W are edge-padded up to a multiple of this
      "batch": 1                     fixed batch size the model takes, or null: any
    }

Fixed-size models see the whole image resized to `size` (bilinear; the mask too) and their output is
resized back. Whatever the model does, the result is composited with the canonical mask, so pixels
where MASK == 0 come back exactly as they went in.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import cv2
import numpy as np

SPEC_FORMAT = "retouch-inpaint-spec/1"
SPEC_FILENAME = "inpaint_spec.json"
RANGES = {"0..1": (0.0, 1.0), "-1..1": (-1.0, 1.0), "0..255": (0.0, 255.0)}
LAYOUTS = ("NCHW", "NHWC")


@dataclass(frozen=True)
class InpaintSpec:
    image_input: str = "IMAGE"
    mask_input: str = "MASK"
    output: str = "OUTPUT"
    layout: str = "NCHW"
    channel_order: str = "RGB"
    image_range: str = "0..1"
    image_dtype: str = "float32"
    output_range: str = "0..1"
    mask_hole_value: float = 1.0
    mask_known_value: float = 0.0
    mask_dtype: str = "float32"
    mask_channels: int = 1
    mask_threshold: float | None = None
    size: tuple[int, int] | None = None
    size_multiple: int = 1
    batch: int | None = None
    format: str = field(default=SPEC_FORMAT)

    def __post_init__(self):
        checks = [
            (self.format == SPEC_FORMAT, f"format must be {SPEC_FORMAT!r}"),
            (self.layout in LAYOUTS, f"layout must be one of {LAYOUTS}"),
            (self.channel_order in ("RGB", "BGR"), "channel_order must be RGB or BGR"),
            (self.image_range in RANGES and self.output_range in RANGES, f"ranges must be one of {sorted(RANGES)}"),
            (
                self.image_dtype in ("float32", "uint8") and self.mask_dtype in ("float32", "uint8"),
                "dtypes must be float32 or uint8",
            ),
            (self.image_dtype != "uint8" or self.image_range == "0..255", "a uint8 image must use range 0..255"),
            (self.mask_hole_value != self.mask_known_value, "mask_hole_value and mask_known_value must differ"),
            (self.mask_channels in (1, 3), "mask_channels must be 1 or 3"),
            (self.size is None or (len(self.size) == 2 and min(self.size) > 0), "size must be [H, W] or null"),
            (self.size_multiple >= 1, "size_multiple must be >= 1"),
            (self.batch is None or self.batch >= 1, "batch must be >= 1 or null"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(f"inpaint spec: {message}")

    @classmethod
    def from_dict(cls, raw: dict) -> InpaintSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"inpaint spec: unknown keys {sorted(unknown)}")
        values = dict(raw)
        if values.get("size") is not None:
            values["size"] = tuple(int(v) for v in values["size"])
        return cls(**values)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["size"] = list(self.size) if self.size else None
        return out


def load_spec(path) -> InpaintSpec:
    return InpaintSpec.from_dict(json.loads(Path(path).read_text()))


def range_affine(name: str) -> tuple[float, float]:
    """(scale, offset) taking [0,1] to the named range: value = unit * scale + offset."""
    lo, hi = RANGES[name]
    return hi - lo, lo


def _resize_nchw(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if x.shape[2:] == tuple(size):
        return x
    h, w = size
    interpolation = cv2.INTER_AREA if h < x.shape[2] and w < x.shape[3] else cv2.INTER_LINEAR
    planes = [
        cv2.resize(np.ascontiguousarray(x[n].transpose(1, 2, 0)), (w, h), interpolation=interpolation)
        for n in range(x.shape[0])
    ]
    return np.stack([p.reshape(h, w, -1).transpose(2, 0, 1) for p in planes]).astype(np.float32)


def model_size(spec: InpaintSpec, height: int, width: int) -> tuple[int, int]:
    """The H, W the model will see for an input of height x width."""
    if spec.size:
        return tuple(spec.size)
    m = spec.size_multiple
    return -(-height // m) * m, -(-width // m) * m


def to_model(image: np.ndarray, mask: np.ndarray, spec: InpaintSpec) -> dict[str, np.ndarray]:
    """Canonical IMAGE [N,3,H,W] and MASK [N,1,H,W] -> the model's feeds, in its conventions."""
    h, w = model_size(spec, *image.shape[2:])
    if spec.size:
        image, mask = _resize_nchw(image, (h, w)), np.clip(_resize_nchw(mask, (h, w)), 0.0, 1.0)
    else:  # pad bottom/right by edge replication; the padding counts as known
        pad = ((0, 0), (0, 0), (0, h - image.shape[2]), (0, w - image.shape[3]))
        image, mask = np.pad(image, pad, mode="edge"), np.pad(mask, pad, mode="constant")
    if spec.mask_threshold is not None:
        mask = (mask > spec.mask_threshold).astype(np.float32)
    if spec.channel_order == "BGR":
        image = image[:, ::-1]
    scale, offset = range_affine(spec.image_range)
    image = image * scale + offset
    if spec.image_dtype == "uint8":
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    else:
        image = image.astype(np.float32)
    mask = spec.mask_known_value + (spec.mask_hole_value - spec.mask_known_value) * mask
    mask = np.rint(mask).astype(np.uint8) if spec.mask_dtype == "uint8" else mask.astype(np.float32)
    mask = np.repeat(mask, spec.mask_channels, axis=1)
    if spec.layout == "NHWC":
        image, mask = image.transpose(0, 2, 3, 1), mask.transpose(0, 2, 3, 1)
    return {spec.image_input: np.ascontiguousarray(image), spec.mask_input: np.ascontiguousarray(mask)}


def from_model(output: np.ndarray, image: np.ndarray, mask: np.ndarray, spec: InpaintSpec) -> np.ndarray:
    """The model's output -> canonical OUTPUT, composited over the canonical image by its mask."""
    out = output.astype(np.float32)
    if spec.layout == "NHWC":
        out = out.transpose(0, 3, 1, 2)
    if spec.channel_order == "BGR":
        out = out[:, ::-1]
    scale, offset = range_affine(spec.output_range)
    out = np.clip((out - offset) / scale, 0.0, 1.0)
    h, w = image.shape[2:]
    out = _resize_nchw(out, (h, w)) if spec.size else out[:, :, :h, :w]
    return (image * (1.0 - mask) + out * mask).astype(np.float32)


def inpaint_with_spec(
    run: Callable[[dict[str, np.ndarray]], np.ndarray], image: np.ndarray, mask: np.ndarray, spec: InpaintSpec
) -> np.ndarray:
    """Canonical in, canonical out, through a model run(feeds) -> output in the spec's conventions.

    Models exported with a fixed batch size get chunks of that size (the last one padded by
    repeating its final image, and the padding's result dropped).
    """
    n = image.shape[0]
    step = spec.batch or n
    results = []
    for start in range(0, n, step):
        chunk_image, chunk_mask = image[start : start + step], mask[start : start + step]
        short = step - chunk_image.shape[0]
        if short:
            chunk_image = np.concatenate([chunk_image, np.repeat(chunk_image[-1:], short, 0)])
            chunk_mask = np.concatenate([chunk_mask, np.repeat(chunk_mask[-1:], short, 0)])
        output = run(to_model(chunk_image, chunk_mask, spec))
        results.append(from_model(output, chunk_image, chunk_mask, spec)[: step - short])
    return np.concatenate(results)
