"""Fine-tune the served DBNet text detector on generated caption and watermark scenes.

    nice -n 10 python -m export.train_text_detector --out export/checkpoints/detector.pt --minutes 24 --threads 2
    (--resume export/checkpoints/detector.pt continues exactly: weights, optimiser, step and rng states)

Not served: docs/text.md ("Fine-tuning the detector") has every recipe tried and its figures.

The detector ships as an ONNX graph (export/text_detectors.py); `OnnxNet` runs that graph in torch
with its initializers as parameters, so trained weights go back into the very same graph by
initializer name (`--write-onnx`, then `python -m export.glyph_dev '{}' --detector-onnx FILE`).
Only the last `--last-layers` convolutions train: the graph's BatchNorms are folded into its
convolutions and the earlier layers are too sharp to fine-tune (docs/text.md).

Each example is a random view of a catalogue photo that neither the edit evaluation (make eval)
nor export/glyph_dev.py's first dev set scores on (`detector_photos`; the second dev set's photos
are trained on: without them the pool is 29 abstract wallpapers and no photo), as the service
sends it: scaled and black-padded to one detection tile (`retouch.text.model_inputs`). Three in
four views get 3-8 lines of text (tests/text_scenes.py, every style, watermarks included, in the
training fonts only). The target is the untouched detector's own probability map on the same tile
(its reading of the photo, real text and texture alike, and its kernel shape on the lines it
finds), raised to 1 only inside the kernels of the overlaid lines it misses (each line's rectangle
shrunk as DBNet's labels are, `shrunk`, whose mean probability is under FOUND). Loss: `loss_fn`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pyclipper
import torch
import torch.nn as nn
import torch.nn.functional as F
from onnx import numpy_helper

from export.common import load_checkpoint, ort_session, save_checkpoint, train_until
from export.glyph_data import HAS_TEXT, TRAIN_FONTS, evaluated, random_view
from export.glyph_dev import DEV_SOURCES, dev_photos
from export.inpaint_data import catalog, load_rgb
from export.text_detectors import INPUT, OUTPUT, SOURCES, rename_io, source_path
from retouch.text import DETECTORS, DetectSettings, model_inputs, plan_detection

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from text_scenes import STYLES, make_scene  # noqa: E402

# DBNet shrinks each label polygon by area * (1 - r^2) / perimeter (r 0.4 on its training boxes,
# which have margins round the letters). On the tight ink rectangles of tests/text_scenes.py the
# shipped detector's own kernels (probability over 0.2) cover 0.52 of the rectangle on lines it
# finds (111 lines, median); r 0.67 gives that area (0.4 gives 0.27: thinner kernels, smaller boxes).
SHRINK_RATIO = 0.67
POSITIVE_WEIGHT = 5.0
FOUND = 0.5  # a line whose kernel the untouched detector gives a mean probability this high is found


class OnnxNet(nn.Module):
    """An ONNX graph of the ops DBNet uses, run in torch. Every initializer is a parameter, by
    position (`t<k>`); the weights are trainable (Conv and ConvTranspose inputs, only the last
    `last_layers` of them if given, and the 4-D operands of Add: the head's biases), the graph's
    constants are not. `initializers()` gives them all back by their ONNX names."""

    def __init__(self, model: onnx.ModelProto, last_layers: int | None = None):
        super().__init__()
        graph = model.graph
        convs = [n for n in graph.node if n.op_type in ("Conv", "ConvTranspose")]
        weights = {name for n in convs[-last_layers if last_layers else 0 :] for name in n.input[1:]}
        inits = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
        weights |= {
            name for n in graph.node if n.op_type == "Add" for name in n.input if inits.get(name, np.zeros(0)).ndim == 4
        }
        self.params = nn.ParameterDict()
        self.keys: dict[str, str] = {}  # ONNX name -> parameter key
        for k, (name, value) in enumerate(inits.items()):
            self.keys[name] = f"t{k}"
            self.params[f"t{k}"] = nn.Parameter(torch.from_numpy(value.copy()), requires_grad=name in weights)
        self.nodes = [
            (n.op_type, list(n.input), n.output[0], {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute})
            for n in graph.node
        ]
        self.input, self.output = graph.input[0].name, graph.output[0].name

    def tensor(self, name: str) -> torch.Tensor:
        return self.params[self.keys[name]]

    def initializers(self) -> dict[str, np.ndarray]:
        return {name: self.tensor(name).detach().numpy().copy() for name in self.keys}

    @staticmethod
    def _same_upper(x: torch.Tensor, kernel, strides, dilations, value: float = 0.0) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[2:][::-1], kernel[::-1], strides[::-1], dilations[::-1]):
            total = max(0, (-(-size // s) - 1) * s + (k - 1) * d + 1 - size)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads, value=value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        env = {self.input: x}
        for op, ins, out, at in self.nodes:
            a = [env[i] if i in env else self.tensor(i) for i in ins if i]
            if op in ("Conv", "ConvTranspose"):
                kernel = at["kernel_shape"]
                strides, dilations = at.get("strides", [1, 1]), at.get("dilations", [1, 1])
                bias = a[2] if len(a) > 2 else None
                if op == "ConvTranspose":
                    y = F.conv_transpose2d(a[0], a[1], bias, strides, 0, 0, at.get("group", 1), dilations)
                elif at.get("auto_pad", b"NOTSET") == b"SAME_UPPER":
                    y = F.conv2d(
                        self._same_upper(a[0], kernel, strides, dilations),
                        a[1],
                        bias,
                        strides,
                        0,
                        dilations,
                        at["group"],
                    )
                else:
                    top, left, bottom, right = at.get("pads", [0, 0, 0, 0])
                    assert (top, left) == (bottom, right), "asymmetric pads"
                    y = F.conv2d(a[0], a[1], bias, strides, (top, left), dilations, at.get("group", 1))
            elif op == "MaxPool":
                assert at.get("auto_pad") == b"SAME_UPPER"
                kernel, strides = at["kernel_shape"], at["strides"]
                y = F.max_pool2d(self._same_upper(a[0], kernel, strides, [1, 1], float("-inf")), kernel, strides)
            elif op == "Relu":
                y = F.relu(a[0])
            elif op == "HardSigmoid":
                y = torch.clamp(at["alpha"] * a[0] + at["beta"], 0.0, 1.0)
            elif op == "Sigmoid":
                y = torch.sigmoid(a[0])
            elif op == "Erf":
                y = torch.erf(a[0])
            elif op == "Mul":
                y = a[0] * a[1]
            elif op == "Add":
                y = a[0] + a[1]
            elif op == "Div":
                y = a[0] / a[1]
            elif op == "Concat":
                y = torch.cat(a, at["axis"])
            elif op == "ReduceMean":
                y = a[0].mean(dim=at["axes"], keepdim=bool(at.get("keepdims", 1)))
            elif op == "GlobalAveragePool":
                y = a[0].mean(dim=(2, 3), keepdim=True)
            elif op == "Resize":
                scales = a[-1].tolist()
                assert at["mode"] == b"nearest" and scales[:2] == [1.0, 1.0] and scales[2] == scales[3]
                y = F.interpolate(a[0], scale_factor=scales[2], mode="nearest")
            else:
                raise NotImplementedError(op)
            env[out] = y
        return env[self.output]


def with_weights(model: onnx.ModelProto, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The graph with these initializers replaced by name; every name and shape must match."""
    inits = {init.name: init for init in model.graph.initializer}
    if weights.keys() != inits.keys():
        raise ValueError(f"weights name {len(weights)} initializers, the graph has {len(inits)}; not the same set")
    for name, value in weights.items():
        old = numpy_helper.to_array(inits[name])
        if value.shape != old.shape or value.dtype != old.dtype:
            raise ValueError(f"{name}: weights give {value.dtype}{value.shape}, the graph has {old.dtype}{old.shape}")
        inits[name].CopyFrom(numpy_helper.from_array(value, name))
    return model


def source_graph() -> onnx.ModelProto:
    """The shipped PP-OCRv6 tiny detector (sha256-checked), with the service's INPUT/OUTPUT names."""
    return rename_io(onnx.load(str(source_path(SOURCES["ppocrv6_tiny"]))), INPUT, OUTPUT)


def detector_photos() -> list:
    """Catalogue photos no evaluation scores on: not make eval's (by group), not the first dev
    set's, not an opencv-doc image, not a picture with text of its own."""
    sources, n = DEV_SOURCES[0]
    dev = {im.group for im in dev_photos(sources, n)}
    return [
        im
        for im in catalog()
        if not evaluated(im) and "opencv" not in im.origin and im.group not in HAS_TEXT and im.group not in dev
    ]


def shrunk(quad: np.ndarray, ratio: float = SHRINK_RATIO) -> np.ndarray | None:
    """DBNet's label polygon: the quad moved inward by area * (1 - ratio^2) / perimeter."""
    area = cv2.contourArea(quad.astype(np.float32))
    perimeter = cv2.arcLength(quad.astype(np.float32), True)
    if area < 1 or perimeter < 1:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath([tuple(p) for p in np.round(quad).astype(np.int64)], pyclipper.JT_ROUND, pyclipper.ET_CLOSEDPOLYGON)
    out = offset.Execute(-area * (1 - ratio**2) / perimeter)
    return np.array(out[0], np.int32) if out else None


class Examples:
    """Random training tiles: (input 3xBxB float32, target BxB float32, missed kernels BxB uint8)."""

    def __init__(self):
        self.teacher = ort_session(source_graph(), threads=1)
        self.photos = detector_photos()  # catalogue images (or HxWx3 arrays)
        self.how = DETECTORS["ppocrv6_tiny"]
        self.settings = DetectSettings()

    def __call__(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        picked = self.photos[int(rng.integers(len(self.photos)))]
        photo = random_view(picked if isinstance(picked, np.ndarray) else load_rgb(picked), rng)
        quads: list[np.ndarray] = []
        shown = photo
        if rng.random() < 0.75:
            layout = "dense" if rng.random() < 0.5 else "sparse"
            scene = make_scene(
                "train",
                photo,
                seed=int(rng.integers(2**31)),
                layout=layout,
                lines=int(rng.integers(3, 9)),
                styles=STYLES,
                fonts=TRAIN_FONTS,
            )
            shown, quads = scene.rgb, [line.quad for line in scene.lines]
        h, w = photo.shape[:2]
        plan = plan_detection(h, w, self.settings)
        # The whole tile as the service sends it (scaled, black-padded to the bucket): the net's
        # squeeze-and-excitation blocks pool over the whole input, so a net tuned on small windows
        # reads a served tile differently (texture fired on whole tiles after training on 320 px crops).
        x_in = model_inputs(shown, plan, self.how)[0]
        side = x_in.shape[-1]
        target = self.teacher.run(None, {"INPUT": x_in[None]})[0][0, 0].copy()
        label = np.zeros((side, side), np.uint8)
        for quad in quads:
            kernel = shrunk(quad * plan.scale)
            if kernel is None:
                continue
            inside = cv2.fillPoly(np.zeros((side, side), np.uint8), [kernel], 1) > 0
            if inside.any() and target[inside].mean() < FOUND:  # a line the detector misses: teach it
                label[inside] = 1
        target[label > 0] = 1.0
        return x_in, target, label


def loss_fn(prob: torch.Tensor, target: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """BCE against the target, each missed line's kernel pixel weighted POSITIVE_WEIGHT times a
    pixel elsewhere. Measured and dropped: Dice, DBNet's balanced BCE, and the mean over the
    kernels added to the mean over all pixels (each kernel pixel then weighs ~100 others): each
    fattened the kernels on every line (larger, merged boxes) and made texture fire (25 -> 215
    to 1,707 boxes on 40 caption-free photos)."""
    bce = F.binary_cross_entropy(prob.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    return (bce * (1.0 + (POSITIVE_WEIGHT - 1.0) * (label > 0))).mean()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "export/checkpoints/detector.pt")
    parser.add_argument("--resume", type=Path)
    parser.add_argument("--batch", type=int, default=2, help="tiles per step")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--minutes", type=float, default=60.0, help="stop (with a checkpoint) after this long")
    parser.add_argument("--every-min", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--last-layers",
        type=int,
        default=2,
        help="train only the last N Conv/ConvTranspose layers (0: all). The graph's BatchNorms are folded "
        "into its convolutions, and the earlier layers are so sharp that one Adam step at lr 2e-5 moves a "
        "found line's mean probability from 0.86 to 0.99; the last two (the head, 1,105 weights) train stably",
    )
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument(
        "--write-onnx",
        type=Path,
        help="only: the detector graph with --resume's weights, for glyph_dev --detector-onnx",
    )
    parser.add_argument("--check", action="store_true", help="only: OnnxNet against onnxruntime on one window")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    torch.manual_seed(args.seed)
    model = OnnxNet(source_graph(), args.last_layers)
    if args.check:
        examples = Examples()
        x, _, _ = examples(np.random.default_rng(0))
        ours = model(torch.from_numpy(x[None])).detach().numpy()
        theirs = examples.teacher.run(None, {"INPUT": x[None]})[0]
        print(f"max |torch - onnxruntime| = {np.abs(ours - theirs).max():.2e}")
        return 0
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr, weight_decay=0.0)
    rng = np.random.default_rng(args.seed)
    step = 0
    if args.resume:
        state = load_checkpoint(args.resume, model, optimiser, rng)
        step = state["step"]
    if args.write_onnx:
        candidate = with_weights(source_graph(), model.initializers())
        onnx.checker.check_model(candidate, full_check=True)
        onnx.save(candidate, str(args.write_onnx))
        print(f"wrote {args.write_onnx} (step {step})")
        return 0
    examples = Examples()

    def save(at: int, reason: str) -> None:
        save_checkpoint(args.out, model, optimiser, at, rng, args, reason)

    def one_step(at: int) -> float:
        optimiser.zero_grad()
        total = 0.0
        for _ in range(args.batch):  # tiles differ in size: one at a time, gradients summed
            x, y, label = (
                torch.from_numpy(a)[None, None] if a.ndim == 2 else torch.from_numpy(a)[None] for a in examples(rng)
            )
            loss = loss_fn(model(x), y, label) / args.batch
            loss.backward()
            total += loss.item()
        optimiser.step()
        return total

    train_until(one_step, save, step, args, log_every=20, smoothing=0.95)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
