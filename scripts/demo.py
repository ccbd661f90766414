"""The README's first command ends here: upscale a real photo through the running server.

The photo is scikit-image's `chelsea` (shipped inside the wheel, so nothing is downloaded). It is
sent as PNG bytes over gRPC to the `upscale` ensemble; the result and its report are written out.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from PIL import Image
from skimage import data

from retouch_client import RetouchClient


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default=os.environ.get("RETOUCH_URL", "127.0.0.1:8001"))
    ap.add_argument("--out", type=Path, default=Path("out"))
    ap.add_argument("--scale", type=int, default=2)
    args = ap.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    photo = data.chelsea()  # 451x300 RGB
    source = args.out / "demo_input.png"
    Image.fromarray(photo).save(source)
    with RetouchClient(args.url) as client:
        result = client.upscale(source.read_bytes(), scale=args.scale)
    target = args.out / f"demo_upscaled_x{args.scale}.png"
    target.write_bytes(result.data)
    (args.out / f"demo_upscaled_x{args.scale}.json").write_text(json.dumps(result.report, indent=2, sort_keys=True))
    r = result.report
    print(
        f"demo: {source} ({photo.shape[1]}x{photo.shape[0]}) -> {target} "
        f"({r['output']['width']}x{r['output']['height']}) via {', '.join(m['name'] for m in r['models'])}; "
        f"{r['upscale']['tiles']} tiles, seam score {r['upscale']['seam_score']}, timings {r['timings_ms']} ms"
    )


if __name__ == "__main__":
    main()
