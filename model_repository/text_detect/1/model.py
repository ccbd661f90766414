"""text_detect: fixed-size buckets through text_detector (BLS), DB post-processing, the text mask.
The work is retouch.text.detect_text; this is the glue."""

from retouch.text import MODEL_NAME, DetectSettings, detect_text
from retouch.triton import detector_infer, input_array
from retouch.triton.step import DETECTOR_PARAMETERS, OperationStep, StepResult, detector_options


class TritonPythonModel(OperationStep):
    OPERATION = "detect_text"
    SETTINGS = DetectSettings
    PARAMETERS = DETECTOR_PARAMETERS
    MODELS = (MODEL_NAME,)
    SERIES = ("masked",)
    FINAL = True

    def setup(self, args):
        self.options = detector_options(args, self.params)

    async def run(self, request, settings):
        found, figures = await detect_text(input_array(request, "PIXELS"), settings, detector_infer, **self.options)
        return StepResult(
            {"BOXES": found.boxes, "SCORES": found.scores, "MASK": found.mask},
            figures,
            models=[MODEL_NAME],
            mask_coverage=found.coverage,
        )
