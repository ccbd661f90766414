"""make eval's residual lines: a line the independent detector also finds in the clean photo (a sign,
a logo, text-like texture under the caption) is found even after a perfect edit, so it is counted
apart from what the edit left."""

from types import SimpleNamespace

import numpy as np

from export.eval_edits import residual_lines


def quad(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


class Detector:
    """The independent detector, faked: fixed boxes for each image it is shown."""

    def __init__(self, boxes_by_image):
        self.boxes_by_image = boxes_by_image

    def independent_boxes(self, rgb):
        return next(boxes for image, boxes in self.boxes_by_image if image is rgb)


def test_residual_lines_split_what_the_clean_photo_already_shows():
    photo = np.zeros((100, 200, 3), np.uint8)
    edited = photo.copy()
    lines = [SimpleNamespace(quad=quad(10, 10, 90, 30)), SimpleNamespace(quad=quad(10, 60, 90, 80))]
    scene = SimpleNamespace(rgb=photo.copy(), photo=photo, lines=lines)
    # After the edit both lines are found; in the clean photo only the second (texture under it).
    models = Detector(
        [(edited, np.stack([quad(8, 8, 92, 32), quad(10, 60, 90, 80)])), (photo, quad(10, 60, 90, 80)[None])]
    )
    assert residual_lines(models, edited, scene) == {"residual": 1.0, "residual_floor": 0.5, "residual_new": 0.5}
    # A box over a quarter of a line does not count as finding it.
    models = Detector([(edited, quad(10, 10, 30, 30)[None]), (photo, np.zeros((0, 4, 2), np.float32))])
    assert residual_lines(models, edited, scene) == {"residual": 0.0, "residual_floor": 0.0, "residual_new": 0.0}
