"""upscale_tiles: cut fixed-size tiles, run them through the mode's upscaler models in batches
(BLS), blend the overlaps, score the seams, resize to the output scale; alpha and 16-bit values
(FIDELITY) are upscaled too. The work is retouch.upscale.upscale; this is the glue."""

import asyncio

import triton_python_backend_utils as pb_utils

from retouch.codecs import pack_fidelity, unpack_fidelity
from retouch.settings import UpscaleSettings
from retouch.triton import bls, input_array
from retouch.triton.step import OperationStep, StepResult, positive_int
from retouch.upscale import UPSCALERS, check_output_size, upscale


class TritonPythonModel(OperationStep):
    OPERATION = "upscale"
    SETTINGS = UpscaleSettings
    PARAMETERS = {
        "tiles_per_request_batch": positive_int,
        "max_chunks_in_flight": positive_int,
        "max_output_pixels": positive_int,
    }
    MODELS = tuple(UPSCALERS)
    SERIES = ("tiled",)

    def setup(self, args):
        self.in_flight = asyncio.Semaphore(self.params["max_chunks_in_flight"])

    async def infer(self, model, batch):
        async with self.in_flight:  # bounds the BLS results (and their shared memory) held at once
            return await bls(model, {"INPUT": batch})

    async def run(self, request, settings):
        pixels = input_array(request, "PIXELS")
        fidelity = pb_utils.get_input_tensor_by_name(request, "FIDELITY")
        deep, alpha = unpack_fidelity(None if fidelity is None else fidelity.as_numpy(), pixels.shape[:2])
        check_output_size(pixels.shape[0], pixels.shape[1], settings, self.params["max_output_pixels"])
        out, figures, deep, alpha = await upscale(
            pixels, settings, self.infer, self.params["tiles_per_request_batch"], deep=deep, alpha=alpha
        )
        return StepResult(
            {"PIXELS": out, "FIDELITY": pack_fidelity(deep, alpha)},
            figures,
            models=figures.pop("models"),
            settings=settings.resolved(),
            seam=(figures["seam_score"], figures["seam_over_threshold"]),
            tiles=figures["tiles"],
        )
