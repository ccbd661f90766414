"""Train the learned glyph segmenter on export/glyph_data.py's line crops.

    nice -n 10 python -m export.train_glyph_segmenter --data build/glyph-data --out export/checkpoints/glyph.pt
    (--resume export/checkpoints/glyph.pt continues exactly: model, optimiser, step and rng states)

A small fully-convolutional U-Net (GlyphNet, ~60k parameters) sees a rectified line crop (RGB and
the detector's box as a fourth channel) and gives each pixel's logit of being ink (the true ink
grown 1 px). Loss: BCE + soft Dice. One thread, seeded; a checkpoint every --every-min minutes and
on SIGTERM. The last --val-shards scene shards and the last negative shard are the validation split (the segmenter's threshold is
chosen there, never on the evaluation scenes); `--validate` writes its figures.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from export.common import load_checkpoint, save_checkpoint, train_until
from export.inpaint_data import colour_jitter

WINDOW = 192  # training crops are cut to this width (the net is fully convolutional)


def conv(cin: int, cout: int, dilation: int = 1, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation), nn.ReLU(inplace=True))


class GlyphNet(nn.Module):
    """[N, 4, H, W] (RGB in [0, 1], box in {0, 1}; H, W multiples of 4) -> [N, 1, H, W] ink logits."""

    def __init__(self, widths: tuple[int, int, int] = (16, 24, 32)):
        super().__init__()
        a, b, c = widths
        self.enc1 = nn.Sequential(conv(4, a), conv(a, a))
        self.enc2 = nn.Sequential(conv(a, b, stride=2), conv(b, b))
        self.enc3 = nn.Sequential(conv(b, c, stride=2), conv(c, c, dilation=2), conv(c, c, dilation=4))
        self.dec2 = nn.Sequential(conv(c + b, b), conv(b, b))
        self.dec1 = nn.Sequential(conv(b + a, a), conv(a, a))
        self.head = nn.Conv2d(a, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x[:, :3] - 0.5, x[:, 3:]], 1)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="bilinear", align_corners=False), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear", align_corners=False), e1], 1))
        return self.head(d1)


def load_shards(paths: list[Path]) -> list[dict]:
    """Every crop of the shards as (image HxWx3 uint8, box HxW uint8, label HxW uint8, from_scene)."""
    crops = []
    for path in paths:
        with np.load(path) as z:
            for image, box, label, width, scene in zip(z["image"], z["box"], z["label"], z["width"], z["scene"]):
                crops.append(
                    {
                        "image": image[:, :width],
                        "box": box[:, :width],
                        "label": label[:, :width],
                        "scene": int(scene),
                        "ink": bool((label[:, :width] > 127).any()),
                    }
                )
    return crops


def sample(crop: dict, rng: np.random.Generator, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """A window-wide piece of a crop (zero padded), flipped and colour-jittered: (4xHxW, 1xHxW) float32."""
    image = crop["image"].astype(np.float32) / 255.0
    box, label = crop["box"].astype(np.float32) / 255.0, crop["label"].astype(np.float32) / 255.0
    h, w = box.shape
    x = int(rng.integers(0, max(w - window, 0) + 1))
    image, box, label = image[:, x : x + window], box[:, x : x + window], label[:, x : x + window]
    image = colour_jitter(np.ascontiguousarray(image), rng)
    if rng.random() < 0.5:  # the other reading direction: a line upside down
        image, box, label = image[::-1, ::-1], box[::-1, ::-1], label[::-1, ::-1]
    if rng.random() < 0.25:  # light text on dark and dark on light alike
        image = 1.0 - image
    net_in = np.zeros((4, h, window), np.float32)
    target = np.zeros((1, h, window), np.float32)
    net_in[:3, :, : image.shape[1]] = image.transpose(2, 0, 1)
    net_in[3, :, : box.shape[1]] = box
    target[0, :, : label.shape[1]] = label
    return net_in, target


NEGATIVE_SHARE = 0.35  # of each batch: crops without ink (boxes on text-free photos, off the text)


def batch(
    pools: tuple[list[dict], list[dict]], rng: np.random.Generator, size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """From (crops with ink, crops without): NEGATIVE_SHARE of the latter, whatever their counts."""
    picks = [pools[int(rng.random() < NEGATIVE_SHARE)] for _ in range(size)]
    pairs = [sample(pool[int(rng.integers(len(pool)))], rng) for pool in picks]
    return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))


def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return bce + dice


def pad_to(x: np.ndarray, multiple: int = 4) -> np.ndarray:
    w = x.shape[-1]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, -w % multiple)])


@torch.no_grad()
def predict(model: nn.Module, crop: dict) -> np.ndarray:
    """A whole crop's ink probability, HxW float32."""
    net_in = np.concatenate(
        [crop["image"].transpose(2, 0, 1).astype(np.float32) / 255.0, crop["box"][None].astype(np.float32) / 255.0]
    )
    w = net_in.shape[-1]
    return torch.sigmoid(model(torch.from_numpy(pad_to(net_in)[None])))[0, 0, :, :w].numpy()


def validate(model: nn.Module, crops: list[dict]) -> dict:
    """Per threshold: pixel recall/precision on crops with ink (against the label), and the share
    of negative crops (detector boxes on text-free photos) with any pixel over it."""
    model.eval()
    probs = [predict(model, c) for c in crops]
    model.train()
    out = {}
    for t in (0.2, 0.3, 0.4, 0.5, 0.6, 0.7):
        tp = fp = fn = 0
        fired = []
        for c, p in zip(crops, probs):
            truth, hit = c["label"] > 127, p > t
            if c["ink"]:
                tp += int((truth & hit).sum())
                fp += int((~truth & hit).sum())
                fn += int((truth & ~hit).sum())
            elif c["scene"] == 0:
                fired.append(float(hit.mean()))
        out[t] = {
            "recall": round(tp / max(tp + fn, 1), 4),
            "precision": round(tp / max(tp + fp, 1), 4),
            "negatives_fired": round(float(np.mean([f > 0 for f in fired])) if fired else 0.0, 4),
            "negative_fill_p99": round(float(np.percentile(fired, 99)) if fired else 0.0, 5),
        }
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("build/glyph-data"))
    parser.add_argument("--out", type=Path, default=Path("export/checkpoints/glyph.pt"))
    parser.add_argument("--resume", type=Path)
    parser.add_argument(
        "--init", type=Path, help="a new run starts from this checkpoint's weights (new optimiser, step 0)"
    )
    parser.add_argument("--val-shards", type=int, default=2)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--steps", type=int, default=100000)
    parser.add_argument("--minutes", type=float, default=60.0, help="stop (with a checkpoint) after this long")
    parser.add_argument("--every-min", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--validate", action="store_true", help="only: validation figures of --resume, as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    shards, negatives = sorted(args.data.glob("shard-*.npz")), sorted(args.data.glob("neg-*.npz"))
    train_paths = shards[: -args.val_shards] + negatives[:-1]
    val_paths = shards[-args.val_shards :] + negatives[-1:]
    model = GlyphNet()
    optimiser = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    rng = np.random.default_rng(args.seed)
    step = 0
    if args.init and not args.resume:
        model.load_state_dict(torch.load(args.init, weights_only=True)["model"])
    if args.resume:
        state = load_checkpoint(args.resume, model, optimiser, rng)
        step = state["step"]
        train_paths = [args.data / p for p in state["train_shards"]]
        val_paths = [args.data / p for p in state["val_shards"]]
    if args.validate:
        print(json.dumps(validate(model, load_shards(val_paths)), indent=1))
        return 0
    crops = load_shards(train_paths)
    pools = ([c for c in crops if c["ink"]], [c for c in crops if not c["ink"]])
    print(
        f"{len(crops)} training crops ({sum(c['ink'] for c in crops)} with ink) from {len(train_paths)} shards; "
        f"{sum(p.numel() for p in model.parameters())} parameters",
        file=sys.stderr,
        flush=True,
    )

    def save(at: int, reason: str) -> None:
        shards = {"train_shards": [p.name for p in train_paths], "val_shards": [p.name for p in val_paths]}
        save_checkpoint(args.out, model, optimiser, at, rng, args, reason, **shards)

    def one_step(at: int) -> float:
        for group in optimiser.param_groups:
            group["lr"] = args.lr * min(1.0, (at + 1) / 200)
        x, y = batch(pools, rng, args.batch)
        loss = loss_fn(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        return loss.item()

    train_until(one_step, save, step, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
