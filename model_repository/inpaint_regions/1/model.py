"""inpaint_regions: fill the masked holes of an image. The work is retouch.inpaint.inpaint
(crop, route, probe, paste, gate); this is the glue: BLS calls to the fill models."""

from retouch.inpaint import InpaintSettings, inpaint
from retouch.triton import input_array
from retouch.triton.step import FillingStep, StepResult


class TritonPythonModel(FillingStep):
    OPERATION = "inpaint"
    SETTINGS = InpaintSettings
    # An empty mask leaves the image unchanged, which is what was asked.
    OUTCOMES = {"accepted": "accepted", "unchanged": "accepted", "needs_review": "needs_review"}
    SERIES = ("masked", "gated")

    async def run(self, request, settings):
        pixels, mask = input_array(request, "PIXELS"), input_array(request, "MASK")
        out, figures = await inpaint(pixels, mask, settings, self.fill, self.params["model_size"])
        return StepResult(
            {"PIXELS": out},
            figures,
            models=figures.pop("models", []),
            verdict=figures["verdict"],
            mask_coverage=figures["mask_coverage"],
            gate=figures.get("gate", {}),
        )
