"""upscale_tiles: cut fixed-size tiles, run them through the mode's upscaler models in batches
(BLS), blend the overlaps, score the seams, resize to the output scale; alpha and 16-bit values
(FIDELITY) are upscaled too. The work is retouch.upscale.upscale; this is the glue."""

import asyncio
from functools import partial

import numpy as np
import triton_python_backend_utils as pb_utils

from retouch.codecs import pack_fidelity, unpack_fidelity
from retouch.settings import UpscaleSettings, parse_settings
from retouch.triton import (add_step, bls, input_array, input_bytes, json_tensor, model_parameters,
                            read_manifest, read_report, respond_each, timed)
from retouch.triton.metrics import PipelineMetrics
from retouch.upscale import DEFAULT_MAX_OUTPUT_PIXELS, UPSCALERS, check_output_size, upscale


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        self.max_batch = int(params.get("tiles_per_request_batch", "8"))
        self.max_output_pixels = int(params.get("max_output_pixels", DEFAULT_MAX_OUTPUT_PIXELS))
        self.manifests = {m: read_manifest(args["model_repository"], m) for m in UPSCALERS}
        self.loop = asyncio.new_event_loop()
        self.in_flight = asyncio.Semaphore(int(params.get("max_chunks_in_flight", "4")))
        self.metrics = PipelineMetrics(["upscale"], tiled=True)

    def execute(self, requests):
        return respond_each(requests, self.upscale, on_error=partial(self.metrics.edit, "upscale"))

    async def infer(self, model, batch):
        async with self.in_flight:  # bounds the BLS results (and their shared memory) held at once
            return await bls(model, {"INPUT": batch})

    def upscale(self, request):
        report = read_report(request)
        settings = parse_settings(UpscaleSettings, input_bytes(request, "SETTINGS"))
        pixels = input_array(request, "PIXELS")
        fidelity = pb_utils.get_input_tensor_by_name(request, "FIDELITY")
        deep, alpha = unpack_fidelity(None if fidelity is None else fidelity.as_numpy(), pixels.shape[:2])
        check_output_size(pixels.shape[0], pixels.shape[1], settings, self.max_output_pixels)
        with timed(report, "upscale"):
            out, figures, deep, alpha = self.loop.run_until_complete(
                upscale(pixels, settings, self.infer, self.max_batch, deep=deep, alpha=alpha))
        models = figures.pop("models")
        add_step(report, "upscale", settings.resolved(), figures, [self.manifests[m] for m in models])
        self.metrics.seam("upscale", figures["seam_score"], figures["seam_over_threshold"])
        self.metrics.tiles("upscale", figures["tiles"])
        self.metrics.edit("upscale", "accepted")
        return [pb_utils.Tensor("PIXELS", np.ascontiguousarray(out)),
                pb_utils.Tensor("FIDELITY", pack_fidelity(deep, alpha)), json_tensor("REPORT", report)]

    def finalize(self):
        self.loop.close()
