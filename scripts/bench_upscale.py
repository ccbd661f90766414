"""Served `upscale` against the in-process limit and the peers on the same weights, side by side.

    scripts/bench_upscale.py --url 127.0.0.1:18001 [--rounds 3] [--images 16] [--size 256]

Every round runs each path once over the same N PNG photos (scikit-image crops), codecs included,
in turn (the order reversed every other round), so a noisy neighbour slows them alike; the figures are medians over rounds and the ratios
are taken within a round. Paths (all x2, waifu2x photo, fp32):

- served:        the `upscale` ensemble over gRPC at --concurrency in flight (default 8)
- limit:         retouch.upscale.upscale in-process on the runtime and thread budget the server uses
                 (retouch/runtimes.py; 2 worker processes x 1 thread, like the upscaler's 2 instances
                 x 1 thread), decode and encode included: the served path minus Triton
- limit_ort:     the pipeline in one process on onnxruntime (2 threads, batch 8): the runtime used before
- ncnn_tiles:    the peer: the source ncnn net driven like Real-ESRGAN's tile_process (tile 128,
                 tile_pad 10, one tile at a time, 2 threads), decode and encode included
- ncnn_tiles_1t: the same peer on one thread (on a busy 2-core host OpenMP's 2-thread barriers stall)
- ncnn_tiles_2p: the peer at its best here: 2 processes x 1 thread, half the images each
- limit_1p2t:    (on request) the pipeline in one process, ncnn on 2 threads
- naive:         cut 128-px tiles with no overlap, infer, paste (ncnn, 1 thread): speed and seam score

Prints a table and writes --json. Seam score: retouch.seams over the tile borders (lower is better;
1.0 = no step).
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import io
import json
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from retouch.codecs import decode_image, encode_image  # noqa: E402
from retouch.runtimes import NcnnRunner, load_runner, read_export_manifest  # noqa: E402
from retouch.seams import seam_score  # noqa: E402
from retouch.settings import UpscaleSettings  # noqa: E402
from retouch.upscale import upscale  # noqa: E402

MODEL = "upscaler_waifu2x_photo_x2"
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photos(n: int, size: int) -> list[bytes]:
    """n distinct size x size crops of natural photos, PNG-encoded."""
    out = []
    i = 0
    while len(out) < n:
        img = getattr(data, PHOTOS[i % len(PHOTOS)])()
        h, w = img.shape[:2]
        if min(h, w) < size:
            img = np.asarray(Image.fromarray(img).resize((max(w, size), max(h, size)), Image.BICUBIC))
            h, w = img.shape[:2]
        k = i // len(PHOTOS)
        y, x = (k * 37) % (h - size + 1), (k * 53) % (w - size + 1)
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img[y : y + size, x : x + size, :3])).save(buf, format="PNG")
        out.append(buf.getvalue())
        i += 1
    return out


def served(url: str, images: list[bytes], concurrency: int, settings: dict, seams: list | None = None) -> float:
    def one(png: bytes):
        client = grpcclient.InferenceServerClient(url)
        inp = grpcclient.InferInput("IMAGE", [1], "BYTES")
        inp.set_data_from_numpy(np.array([png], dtype=object))
        sett = grpcclient.InferInput("SETTINGS", [1], "BYTES")
        sett.set_data_from_numpy(np.array([json.dumps(settings).encode()], dtype=object))
        out = client.infer(
            "upscale",
            [inp, sett],
            client_timeout=600,
            outputs=[grpcclient.InferRequestedOutput(n) for n in ("OUTPUT_IMAGE", "REPORT")],
        )
        client.close()
        report = json.loads(out.as_numpy("REPORT")[0])["upscale"]
        if report["seam_lines"] and seams is not None:
            seams.append(report["seam_score"])
        return out.as_numpy("OUTPUT_IMAGE")[0]

    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, images))
    assert all(len(r) > 0 for r in results)
    return len(images) / (time.perf_counter() - t0)


def in_process(images: list[bytes], run, settings: UpscaleSettings, max_batch: int = 8) -> float:
    async def infer(model, batch):
        return run({"INPUT": batch}, ["OUTPUT"])[0]

    t0 = time.perf_counter()
    for png in images:
        rgb = decode_image(png).rgb
        out, *_ = asyncio.run(upscale(rgb, settings, infer, max_batch))
        encode_image(out, settings.format)
    return len(images) / (time.perf_counter() - t0)


def to_uint8(chw: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(chw.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)


def tile_process(net: NcnnRunner, img: np.ndarray, tile: int = 128, tile_pad: int = 10) -> np.ndarray:
    """Real-ESRGAN's RealESRGANer.tile_process, on an ncnn net: each tile with tile_pad px of real
    context (clamped at the image border), inferred alone, its padding cropped off, pasted."""
    c, h, w = img.shape
    s = net.scale
    out = np.zeros((c, h * s, w * s), np.float32)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0, py1, px1 = (
                max(y0 - tile_pad, 0),
                max(x0 - tile_pad, 0),
                min(y1 + tile_pad, h),
                min(x1 + tile_pad, w),
            )
            up = net.one(np.ascontiguousarray(img[:, py0:py1, px0:px1]))
            oy, ox = (y0 - py0) * s, (x0 - px0) * s
            out[:, y0 * s : y1 * s, x0 * s : x1 * s] = up[:, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s]
    return out


def naive_tiles(net: NcnnRunner, img: np.ndarray, tile: int = 128) -> np.ndarray:
    """Cut, infer, paste: no context, no overlap."""
    c, h, w = img.shape
    s = net.scale
    out = np.zeros((c, h * s, w * s), np.float32)
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            t = np.ascontiguousarray(img[:, y0 : y0 + tile, x0 : x0 + tile])
            out[:, y0 * s : (y0 + t.shape[1]) * s, x0 * s : (x0 + t.shape[2]) * s] = net.one(t)
    return out


def peer(images: list[bytes], fn, fmt: str, seams: list | None = None, tile: int = 128) -> float:
    t0 = time.perf_counter()
    for png in images:
        rgb = decode_image(png).rgb
        out = to_uint8(fn(np.ascontiguousarray(rgb.transpose(2, 0, 1), np.float32) / 255.0))
        encode_image(out, fmt)
        if seams is not None:
            h, w = rgb.shape[:2]
            rows = [y * 2 for y in range(tile, h, tile)]
            cols = [x * 2 for x in range(tile, w, tile)]
            seams.append(seam_score(out, rows, cols, 2))
    return len(images) / (time.perf_counter() - t0)


_worker: dict = {}


def _worker_init(version_dir: str, settings: dict) -> None:
    _worker["run"] = load_runner(version_dir, "auto", threads=1)[1]
    _worker["net"] = NcnnRunner(read_export_manifest(version_dir), threads=1)
    _worker["settings"] = UpscaleSettings(**settings)


def _worker_job(job: tuple[str, list[bytes]]) -> float:
    kind, images = job
    if kind == "limit":
        return in_process(images, _worker["run"], _worker["settings"])
    return peer(images, lambda x: tile_process(_worker["net"], x), _worker["settings"].format)


def two_processes(pool, kind: str, images: list[bytes]) -> float:
    t0 = time.perf_counter()
    pool.map(_worker_job, [(kind, images[0::2]), (kind, images[1::2])], chunksize=1)
    return len(images) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="127.0.0.1:8001")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--settings", default="{}", help="served/limit UpscaleSettings JSON (scale 2 always)")
    ap.add_argument("--paths", default="served,limit,limit_ort,ncnn_tiles,ncnn_tiles_1t,ncnn_tiles_2p,naive")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    images = photos(args.images, args.size)
    user = json.loads(args.settings) | {"scale": 2}
    settings = UpscaleSettings(**user)
    version_dir = ROOT / "model_repository" / MODEL / "1"
    runtime, run = load_runner(version_dir, "auto", threads=2)
    _, run_ort = load_runner(version_dir, "onnxruntime", threads=2)
    net = NcnnRunner(read_export_manifest(version_dir), threads=2)
    net1 = NcnnRunner(read_export_manifest(version_dir), threads=1)
    seams: dict[str, list] = {"served": [], "ncnn_tiles": [], "naive": []}
    # spawn, not fork: OpenMP state does not survive a fork
    pool = mp.get_context("spawn").Pool(2, _worker_init, (str(version_dir), user))
    pool.map(_worker_job, [("limit", images[:1]), ("peer", images[:1])] * 2, chunksize=1)  # warm
    paths = {
        "served": lambda: served(args.url, images, args.concurrency, user, seams["served"]),
        "limit": lambda: two_processes(pool, "limit", images),
        "limit_1p2t": lambda: in_process(images, run, settings),
        "limit_ort": lambda: in_process(images, run_ort, settings),
        "ncnn_tiles": lambda: peer(images, lambda x: tile_process(net, x), settings.format, seams["ncnn_tiles"]),
        "ncnn_tiles_1t": lambda: peer(images, lambda x: tile_process(net1, x), settings.format),
        "ncnn_tiles_2p": lambda: two_processes(pool, "peer", images),
        "naive": lambda: peer(images, lambda x: naive_tiles(net1, x), settings.format, seams["naive"]),
    }
    chosen = args.paths.split(",")
    rates: dict[str, list[float]] = {p: [] for p in chosen}
    for r in range(args.rounds):
        # Alternate the order, so a neighbour's load that drifts during a round favours no path.
        for p in chosen if r % 2 == 0 else chosen[::-1]:
            rates[p].append(paths[p]())
            print(f"round {r + 1}/{args.rounds} {p:11s} {rates[p][-1]:.3f} img/s", file=sys.stderr, flush=True)

    med = {p: statistics.median(v) for p, v in rates.items()}
    print(
        f"\nupscale x2, {args.images} PNG photos of {args.size}^2, settings {json.dumps(user)}, "
        f"server runtime {runtime}, medians of {args.rounds} rounds"
    )
    peers = [p for p in ("ncnn_tiles", "ncnn_tiles_1t", "ncnn_tiles_2p") if p in rates]
    best = [max(rates[p][r] for p in peers) for r in range(args.rounds)] if peers else None
    print(f"{'path':13s} {'img/s':>7s}  {'vs ncnn_tiles':>13s}  {'vs best peer':>12s}  {'vs limit':>8s}")
    for p in chosen:
        # ratios within each round, then the median
        def ratio(ref):
            if ref not in rates:
                return float("nan")
            return statistics.median(a / b for a, b in zip(rates[p], rates[ref]))

        vs_best = statistics.median(a / b for a, b in zip(rates[p], best)) if best else float("nan")
        print(f"{p:13s} {med[p]:7.3f}  {ratio('ncnn_tiles'):12.2f}x  {vs_best:11.2f}x  {ratio('limit'):7.2f}x")
    for p, v in seams.items():
        if v:
            print(f"seam score {p}: median {statistics.median(v):.3f} (1.0 = no step)")
        elif p == "served":
            print("seam score served: no seams (each image fits one tile)")
    pool.close()
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "runtime": runtime,
                    "best_peer": best,
                    "settings": user,
                    "rates": rates,
                    "median": med,
                    "seams": {p: v for p, v in seams.items() if v},
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
