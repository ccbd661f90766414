"""text_remove: detect text, inpaint it away, verify. The work is retouch.remove_text.remove_text;
this is the glue: BLS calls to the detectors (text_detector, and text_detector_small for the second
look), the glyph segmenter, the recogniser and the fill models, and the caller's OBJECT_MASK."""

from collections import Counter
from pathlib import Path

from retouch.glyphs import SEGMENTER
from retouch.reading import RECOGNIZER, line_verdict, read_characters
from retouch.remove_text import RemoveTextSettings, SecondLook, remove_text
from retouch.text import MODEL_NAME, SECOND_LOOK_MODEL, served_detector
from retouch.triton import (
    decode_image_mask,
    detector_infer,
    input_array,
    input_bytes,
    model_infer,
    recognizer_infer,
    segmenter_infer,
)
from retouch.triton.step import (
    DETECTOR_PARAMETERS,
    FILL_PARAMETERS,
    FillingStep,
    StepResult,
    detector_options,
    positive_int,
)


class TritonPythonModel(FillingStep):
    OPERATION = "remove_text"
    SETTINGS = RemoveTextSettings
    PARAMETERS = {**DETECTOR_PARAMETERS, **FILL_PARAMETERS, "max_pixels": positive_int}
    MODELS = (MODEL_NAME, SECOND_LOOK_MODEL, SEGMENTER, RECOGNIZER, *FillingStep.MODELS)
    OUTCOMES = {"no_text": "accepted", "accepted": "accepted", "needs_review": "needs_review"}
    SERIES = ("masked", "gated", "read")

    def setup(self, args):
        super().setup(args)
        self.detect_options = detector_options(args, self.params)
        repository = Path(args["model_repository"]).parent
        self.characters = read_characters(repository)
        detector = served_detector(repository, SECOND_LOOK_MODEL)
        self.second_look = SecondLook(model_infer(SECOND_LOOK_MODEL), detector)

    async def run(self, request, settings):
        pixels = input_array(request, "PIXELS")
        object_bytes = input_bytes(request, "OBJECT_MASK")
        objects = (
            None if object_bytes is None else decode_image_mask(object_bytes, pixels.shape, self.params["max_pixels"])
        )
        out, mask, figures = await remove_text(
            pixels,
            settings,
            detector_infer,
            self.fill,
            objects,
            self.params["model_size"],
            segment_infer=segmenter_infer,
            read_infer=recognizer_infer,
            characters=self.characters,
            second_look=self.second_look,
            **self.detect_options,
        )
        inpainted, looked = figures.get("inpaint", {}), figures.get("second_look", {})
        models = [MODEL_NAME, *([SEGMENTER] if figures["segmented_lines"] else [])]
        models += [*([RECOGNIZER] if figures["read_lines"] else []), *inpainted.pop("models", [])]
        models += figures.get("repaint", {}).pop("models", [])
        if looked:
            models += [SECOND_LOOK_MODEL, *([RECOGNIZER] if looked["new_lines"] else [])]
            models += [SEGMENTER] if looked.get("segmented_lines") else []
        lines = figures["lines"] + (looked["lines"] if looked.get("painted") else [])
        return StepResult(
            {"PIXELS": out, "MASK": mask},
            figures,
            models=list(dict.fromkeys(models)),
            verdict=figures["outcome"],
            mask_coverage=figures["mask_coverage"],
            gate=inpainted.get("gate", {}),
            line_verdicts=Counter(line_verdict(line["kind"], line.get("reason")) for line in lines),
        )
