"""The rest of `make bench` (scripts/bench.sh runs scripts/bench_upscale.py and bench_shm.py beside it),
against a server started with --model-control-mode=explicit:

- detect_text: served at concurrency 8 vs the in-process limit (retouch.text.detect_text on the
  same model.onnx, onnxruntime, 2 threads, PNG decode included), and rapidocr's detector (the
  PP-OCRv4 det it ships, through its own TextDetector) where it runs here;
- batching: the same load with the model's dynamic batching on and off (the model reloaded with a
  config override, explicit model control), average executed batch from Triton's statistics:
  text_detector under detect_text, upscaler_waifu2x_photo_x2 under upscale;
- second_look: served remove_text one request at a time, alternately with its second look (the
  check by text_detector_small) on and off, on captioned photos: ms each and the median ratio;
- codec: PNG encode time and size by zlib level (Pillow 1/3/6, OpenCV 1/3) on a 1024^2 photo;
- 4K: one 3840x2160 photo through `upscale` x2, with the RSS and PSS of tritonserver and its stubs
  sampled every 0.2 s (idle before, peak during).

    .venv/bin/python scripts/bench.py --url 127.0.0.1:18001 --pid-file .run/bench/tritonserver.pid
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures as cf
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import tritonclient.grpc as grpcclient
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from workload import encode, image, request  # noqa: E402

from retouch.codecs import decode_image  # noqa: E402
from retouch.runtimes import load_runner  # noqa: E402
from retouch.text import DetectSettings, detect_text, served_detector  # noqa: E402


def infer_once(url: str, model: str, inputs: dict[str, bytes], settings: dict | None = None):
    client = grpcclient.InferenceServerClient(url)
    tensors = []
    for name, value in inputs.items():
        t = grpcclient.InferInput(name, [1], "BYTES")
        t.set_data_from_numpy(np.array([value], dtype=object))
        tensors.append(t)
    if settings:
        t = grpcclient.InferInput("SETTINGS", [1], "BYTES")
        t.set_data_from_numpy(np.array([json.dumps(settings).encode()], dtype=object))
        tensors.append(t)
    out = client.infer(model, tensors, outputs=[grpcclient.InferRequestedOutput("REPORT")], client_timeout=900)
    client.close()
    return json.loads(out.as_numpy("REPORT")[0])


def served(url: str, model: str, requests: list[dict], concurrency: int = 8, settings: dict | None = None) -> float:
    t0 = time.perf_counter()
    with cf.ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda r: infer_once(url, model, r, settings), requests))
    return len(requests) / (time.perf_counter() - t0)


def batch_counts(url: str, model: str) -> tuple[int, int]:
    s = grpcclient.InferenceServerClient(url).get_inference_statistics(model).model_stats[0]
    return s.inference_count, s.execution_count


def detect_limit(requests: list[dict]) -> float:
    version_dir = ROOT / "model_repository" / "text_detector" / "1"
    _, run = load_runner(version_dir, "onnxruntime", threads=2)
    detector = served_detector(version_dir.parents[1])

    async def infer(batch):
        return run({"INPUT": batch}, ["OUTPUT"])[0]

    t0 = time.perf_counter()
    for r in requests:
        asyncio.run(detect_text(decode_image(r["IMAGE"]).rgb, DetectSettings(), infer, detector=detector))
    return len(requests) / (time.perf_counter() - t0)


def rapidocr_detector():
    """rapidocr's own detector (PP-OCRv4 det + its DB post-processing), or None where it does not run."""
    try:
        from rapidocr_onnxruntime import RapidOCR

        engine = RapidOCR()
        return lambda rgb: engine.text_det(np.ascontiguousarray(rgb[..., ::-1]))
    except Exception as exc:  # noqa: BLE001 - report, do not fail the bench
        print(f"  rapidocr: not runnable here ({type(exc).__name__}: {exc})", file=sys.stderr)
        return None


def detect_peer(requests: list[dict], det) -> float:
    t0 = time.perf_counter()
    for r in requests:
        det(decode_image(r["IMAGE"]).rgb)
    return len(requests) / (time.perf_counter() - t0)


def section_detect(url: str, rounds: int, n: int) -> dict:
    reqs = [request("detect_text", s, i) for i, s in enumerate([512, 384, 640, 512] * (n // 4))]
    det = rapidocr_detector()
    paths = {"served": lambda: served(url, "detect_text", reqs), "limit": lambda: detect_limit(reqs)}
    if det:
        paths["rapidocr"] = lambda: detect_peer(reqs, det)
    rates = {p: [] for p in paths}
    for r in range(rounds):
        for p, f in paths.items():
            rates[p].append(f())
            print(f"  detect_text round {r + 1} {p}: {rates[p][-1]:.2f} req/s", file=sys.stderr, flush=True)
    return {
        "rates": rates,
        "served_vs_limit": statistics.median(a / b for a, b in zip(rates["served"], rates["limit"])),
        **(
            {"served_vs_rapidocr": statistics.median(a / b for a, b in zip(rates["served"], rates["rapidocr"]))}
            if det
            else {}
        ),
    }


def reload(url: str, model: str, batching: bool) -> None:
    client = grpcclient.InferenceServerClient(url)
    if batching:
        client.load_model(model)  # back to the config on disk
        return
    config = client.get_model_config(model, as_json=True)["config"]
    config.pop("dynamic_batching", None)
    client.load_model(model, config=json.dumps(config))


def section_batching(url: str, rounds: int, n: int) -> dict:
    cases = {
        "text_detector": ("detect_text", [request("detect_text", 512, i) for i in range(n)], None),
        "upscaler_waifu2x_photo_x2": (
            "upscale",
            [request("upscale", 256, i) for i in range(n)],
            {"tile": 64, "overlap": 8},
        ),
    }
    out = {}
    for model, (op, reqs, settings) in cases.items():
        res = {"on": [], "off": [], "batch_on": [], "batch_off": []}
        for r in range(rounds):
            for mode in ("off", "on"):
                reload(url, model, mode == "on")
                before = batch_counts(url, model)
                res[mode].append(served(url, op, reqs, 8, settings))
                after = batch_counts(url, model)
                res[f"batch_{mode}"].append((after[0] - before[0]) / max(1, after[1] - before[1]))
                print(
                    f"  batching {model} {mode} round {r + 1}: {res[mode][-1]:.2f} req/s, "
                    f"average batch {res[f'batch_{mode}'][-1]:.2f}",
                    file=sys.stderr,
                    flush=True,
                )
        reload(url, model, True)
        out[model] = res | {"on_vs_off": statistics.median(a / b for a, b in zip(res["on"], res["off"]))}
    return out


def section_codec(rounds: int) -> dict:
    import cv2

    rgb = np.asarray(Image.fromarray(image(512, 0, text=False)).resize((1024, 1024), Image.BICUBIC))
    import io

    def pil(level):
        def f():
            buf = io.BytesIO()
            Image.fromarray(rgb).save(buf, format="PNG", compress_level=level)
            return buf.getvalue()

        return f

    def ocv(level):
        return lambda: cv2.imencode(".png", rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, level])[1].tobytes()

    cands = {f"pillow_{lv}": pil(lv) for lv in (1, 3, 6)} | {f"opencv_{lv}": ocv(lv) for lv in (1, 3)}
    times = {k: [] for k in cands}
    sizes = {}
    for _ in range(max(3, rounds)):
        for k, f in cands.items():
            t0 = time.perf_counter()
            sizes[k] = len(f())
            times[k].append(time.perf_counter() - t0)
    return {
        k: {
            "ms": round(statistics.median(v) * 1e3, 1),
            "mb": round(sizes[k] / 1e6, 3),
            "vs_pillow_6": round(statistics.median(a / b for a, b in zip(v, times["pillow_6"])), 3),
        }
        for k, v in times.items()
    }


def processes(pid: int) -> list[int]:
    """The server and its descendants (the Python backend stubs)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


def memory(pid: int) -> tuple[int, int, int]:
    """(RSS, PSS, process count) of the server and its stubs, bytes."""
    rss = pss = 0
    pids = processes(pid)
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss, len(pids)


def section_4k(url: str, pid: int) -> dict:
    rgb = np.asarray(Image.fromarray(image(1024, 0, text=False)).resize((3840, 2160), Image.BICUBIC))
    png = encode(rgb)
    idle = memory(pid)
    peak = list(idle)
    done = threading.Event()

    def sample():
        while not done.is_set():
            rss, pss, _ = memory(pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    report = infer_once(url, "upscale", {"IMAGE": png}, {"scale": 2})
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    gib = 1 << 30
    return {
        "seconds": round(seconds, 1),
        "tiles": report["upscale"]["tiles"],
        "processes": idle[2],
        "seam_score": report["upscale"]["seam_score"],
        "idle_rss_gib": round(idle[0] / gib, 3),
        "peak_rss_gib": round(peak[0] / gib, 3),
        "added_rss_gib": round((peak[0] - idle[0]) / gib, 3),
        "idle_pss_gib": round(idle[1] / gib, 3),
        "peak_pss_gib": round(peak[1] / gib, 3),
        "added_pss_gib": round((peak[1] - idle[1]) / gib, 3),
    }


def section_second_look(url: str, n: int) -> dict:
    """remove_text's latency with second_look on and off, alternating (the order flips each photo),
    one request at a time, on n captioned photos of three sizes."""
    ms = {True: [], False: []}
    for i in range(n):
        inputs = request("remove_text", (384, 512, 640)[i % 3], i)
        for on in (True, False) if i % 2 else (False, True):
            t0 = time.perf_counter()
            report = infer_once(url, "remove_text", inputs, {"second_look": on})
            ms[on].append(1000 * (time.perf_counter() - t0))
            section = report["remove_text"]
            assert ("second_look" in section) == (on and "inpaint" in section)  # the check runs once painted
    return {
        "on_ms": round(statistics.median(ms[True]), 1),
        "off_ms": round(statistics.median(ms[False]), 1),
        "on_vs_off": round(statistics.median(a / b for a, b in zip(ms[True], ms[False])), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--pid-file", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--sections", default="detect,batching,second_look,codec,4k")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    pid = int(args.pid_file.read_text())
    results = {}
    sections = args.sections.split(",")
    if "detect" in sections:
        print("== detect_text: served vs in-process limit vs rapidocr (concurrency 8)", flush=True)
        d = results["detect"] = section_detect(args.url, args.rounds, args.requests)
        print("  " + ", ".join(f"{p} {statistics.median(v):.2f} req/s" for p, v in d["rates"].items()))
        print(
            f"  served / limit {d['served_vs_limit']:.2f}x"
            + (f", served / rapidocr {d['served_vs_rapidocr']:.2f}x" if "served_vs_rapidocr" in d else "")
        )
    if "batching" in sections:
        print("== dynamic batching on vs off (model reloaded with a config override), concurrency 8", flush=True)
        b = results["batching"] = section_batching(args.url, max(1, args.rounds - 1), args.requests)
        for model, res in b.items():
            print(
                f"  {model}: on {statistics.median(res['on']):.2f} req/s (average batch "
                f"{statistics.median(res['batch_on']):.2f}), off {statistics.median(res['off']):.2f} req/s "
                f"(batch {statistics.median(res['batch_off']):.2f}); on / off {res['on_vs_off']:.2f}x"
            )
    if "second_look" in sections:
        print("== remove_text with its second look on vs off (alternately, one at a time)", flush=True)
        s = results["second_look"] = section_second_look(args.url, args.requests)
        print(f"  on {s['on_ms']} ms, off {s['off_ms']} ms (medians); on / off {s['on_vs_off']:.2f}x (median ratio)")
    if "codec" in sections:
        print("== PNG encoder settings, 1024^2 photo", flush=True)
        c = results["codec"] = section_codec(args.rounds)
        for k, v in c.items():
            print(f"  {k}: {v['ms']} ms, {v['mb']} MB, time vs pillow level 6 {v['vs_pillow_6']:.2f}x")
    if "4k" in sections:
        print("== 4K photo (3840x2160) through upscale x2: memory of tritonserver and its stubs", flush=True)
        k = results["4k"] = section_4k(args.url, pid)
        print(
            f"  {k['seconds']} s, {k['tiles']} tiles (seam score {k['seam_score']}), {k['processes']} processes; RSS idle "
            f"{k['idle_rss_gib']} GiB, peak {k['peak_rss_gib']} GiB (+{k['added_rss_gib']}); PSS idle "
            f"{k['idle_pss_gib']} GiB, peak {k['peak_pss_gib']} GiB (+{k['added_pss_gib']})"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
