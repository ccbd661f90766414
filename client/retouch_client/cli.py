"""retouch command line: `retouch upscale in.jpg -o out.png --scale 4`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from retouch_client.client import DEFAULT_URL, InvalidInputError, RetouchClient, RetouchError

EXIT_OK, EXIT_INVALID, EXIT_FAILED = 0, 2, 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="retouch", description=__doc__)
    ap.add_argument("--url", default=os.environ.get("RETOUCH_URL", DEFAULT_URL),
                    help="Triton gRPC address (env RETOUCH_URL)")
    ap.add_argument("--timeout", type=float, default=300.0, help="deadline per call, seconds")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    sub = ap.add_subparsers(dest="command", required=True)
    up = sub.add_parser("upscale", help="upscale an image x2 or x4")
    up.add_argument("input", type=Path)
    up.add_argument("-o", "--output", type=Path, required=True)
    up.add_argument("--scale", type=int, default=2)
    up.add_argument("--mode", default="conservative", choices=["conservative", "creative"])
    args = ap.parse_args(argv)

    fmt = {".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}.get(args.output.suffix.lower(), "png")
    try:
        with RetouchClient(args.url, timeout_s=args.timeout) as client:
            result = client.upscale(args.input.read_bytes(), scale=args.scale, mode=args.mode, format=fmt)
    except InvalidInputError as exc:
        print(f"retouch: invalid input: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except RetouchError as exc:
        print(f"retouch: failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(result.data)
    if args.json:
        print(json.dumps(result.report, indent=2, sort_keys=True))
    else:
        out = result.report["output"]
        print(f"wrote {args.output} ({out['width']}x{out['height']}, seam score "
              f"{result.report['seam_score']}, {result.report['tiles']} tiles)")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
