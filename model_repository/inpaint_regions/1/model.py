"""inpaint_regions: fill the masked holes of an image. The work is retouch.inpaint.inpaint
(crop, route, probe, paste, gate); this is the glue: BLS calls to the fill models."""

from retouch.inpaint import InpaintSettings, inpaint
from retouch.triton import fill_infer, input_array
from retouch.triton.step import FILL_MODELS, FILL_PARAMETERS, OperationStep, StepResult, fill_models


class TritonPythonModel(OperationStep):
    OPERATION = "inpaint"
    SETTINGS = InpaintSettings
    PARAMETERS = FILL_PARAMETERS
    MODELS = FILL_MODELS
    # An empty mask leaves the image unchanged, which is what was asked.
    OUTCOMES = {"accepted": "accepted", "unchanged": "accepted", "needs_review": "needs_review"}
    SERIES = ("masked", "gated")

    def setup(self, args):
        self.served.update(fill_models(self.params))
        self.fill = fill_infer(self.params["crops_per_request_batch"], self.served)

    async def run(self, request, settings):
        pixels, mask = input_array(request, "PIXELS"), input_array(request, "MASK")
        out, figures = await inpaint(pixels, mask, settings, self.fill, self.params["model_size"])
        return StepResult({"PIXELS": out}, figures, models=figures.pop("models_used", []),
                          verdict=figures["verdict"], mask_coverage=figures["mask_coverage"],
                          gate=figures.get("gate", {}))
