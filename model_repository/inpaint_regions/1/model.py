"""inpaint_regions: fill the masked holes of an image. The work is retouch.inpaint.inpaint
(crop, route, probe, paste, gate); this is the glue: BLS calls to the fill models, the report,
the metrics."""

import asyncio
from functools import partial

import numpy as np
import triton_python_backend_utils as pb_utils

from retouch.inpaint import FAST_FILL, UNET, InpaintSettings, inpaint
from retouch.settings import parse_settings
from retouch.triton import (add_step, fill_infer, input_array, input_bytes, json_tensor, model_parameters,
                            read_manifest, read_report, respond_each, timed)
from retouch.triton.metrics import PipelineMetrics


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        self.model_size = int(params.get("model_size", "256"))
        self.infer = fill_infer(int(params.get("crops_per_request_batch", "8")))
        self.manifests = {m: read_manifest(args["model_repository"], m) for m in (FAST_FILL, UNET)}
        self.loop = asyncio.new_event_loop()
        self.metrics = PipelineMetrics(["inpaint"], masked=True, gated=True)

    def execute(self, requests):
        return respond_each(requests, self.inpaint, on_error=partial(self.metrics.edit, "inpaint"))

    def inpaint(self, request):
        report = read_report(request)
        settings = parse_settings(InpaintSettings, input_bytes(request, "SETTINGS"))
        pixels, mask = input_array(request, "PIXELS"), input_array(request, "MASK")
        with timed(report, "inpaint"):
            out, figures = self.loop.run_until_complete(
                inpaint(pixels, mask, settings, self.infer, self.model_size))
        models = [self.manifests[m] for m in figures.pop("models", [])]
        add_step(report, "inpaint", settings, figures, models)
        self.record(figures)
        return [pb_utils.Tensor("PIXELS", np.ascontiguousarray(out)), json_tensor("REPORT", report)]

    def record(self, figures):
        self.metrics.mask_coverage("inpaint", figures["mask_coverage"])
        if "gate" in figures:
            self.metrics.gate("inpaint", figures["gate"]["ring_error"], figures["gate"]["hf_ratio"])
        outcome = {"accepted": "accepted", "unchanged": "accepted"}.get(figures["verdict"], "needs_review")
        self.metrics.edit("inpaint", outcome)

    def finalize(self):
        self.loop.close()
