import numpy as np
import pytest
from skimage import data


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real photographs shipped inside scikit-image, cropped square to 256x256."""
    crops = {
        "astronaut": data.astronaut()[0:256, 100:356],
        "coffee": data.coffee()[100:356, 150:406],
        "chelsea": data.chelsea()[30:286, 100:356],
    }
    return {k: np.ascontiguousarray(v) for k, v in crops.items()}
