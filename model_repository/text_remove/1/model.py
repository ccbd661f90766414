"""text_remove: detect text, inpaint it away, verify. The work is retouch.remove_text.remove_text;
this is the glue: BLS calls to the detector and the fill models, the report, the metrics."""

import asyncio
from functools import partial

import numpy as np
import triton_python_backend_utils as pb_utils

from retouch.codecs import DEFAULT_MAX_PIXELS
from retouch.inpaint import FAST_FILL, UNET
from retouch.remove_text import RemoveTextSettings, remove_text
from retouch.settings import parse_settings
from retouch.text import MODEL_NAME
from retouch.triton import (add_step, decode_image_mask, detector_infer, detector_options, fill_infer,
                            input_array, input_bytes, json_tensor, model_parameters, read_manifest,
                            read_report, respond_each, timed)
from retouch.triton.metrics import PipelineMetrics

OPERATION = "remove_text"
# What the operation's outcome counts as in retouch_edits_total.
OUTCOMES = {"no_text": "accepted", "accepted": "accepted", "needs_review": "needs_review"}


class TritonPythonModel:
    def initialize(self, args):
        params = model_parameters(args)
        self.detect_options = detector_options(args)
        self.fill = fill_infer(self.detect_options["max_batch"])
        self.model_size = int(params.get("model_size", "256"))
        self.max_pixels = int(params.get("max_pixels", DEFAULT_MAX_PIXELS))
        self.manifests = {m: read_manifest(args["model_repository"], m) for m in (MODEL_NAME, FAST_FILL, UNET)}
        self.loop = asyncio.new_event_loop()
        self.metrics = PipelineMetrics([OPERATION], masked=True, gated=True)

    def execute(self, requests):
        return respond_each(requests, self.remove, on_error=partial(self.metrics.edit, OPERATION))

    def remove(self, request):
        report = read_report(request)
        settings = parse_settings(RemoveTextSettings, input_bytes(request, "SETTINGS"))
        pixels = input_array(request, "PIXELS")
        object_bytes = input_bytes(request, "OBJECT_MASK")
        objects = (None if object_bytes is None
                   else decode_image_mask(object_bytes, pixels.shape, self.max_pixels))
        with timed(report, OPERATION):
            out, mask, figures = self.loop.run_until_complete(remove_text(
                pixels, settings, detector_infer, self.fill, objects, self.model_size, **self.detect_options))
        used = [MODEL_NAME, *figures.get("inpaint", {}).pop("models", [])]
        add_step(report, OPERATION, settings, figures, [self.manifests[m] for m in used])
        self.metrics.mask_coverage(OPERATION, figures["mask_coverage"])
        if "inpaint" in figures:
            gate = figures["inpaint"]["gate"]
            self.metrics.gate(OPERATION, gate["ring_error"], gate["hf_ratio"])
        self.metrics.edit(OPERATION, OUTCOMES[figures["outcome"]])
        return [pb_utils.Tensor("PIXELS", np.ascontiguousarray(out)), pb_utils.Tensor("MASK", mask),
                json_tensor("REPORT", report)]

    def finalize(self):
        self.loop.close()
