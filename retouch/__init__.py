"""retouch: the pure image operations behind the Triton models.

Everything here is plain numpy/Pillow/OpenCV and unit-tested without Triton. The Triton glue lives
in retouch.triton and the model.py shims under model_repository/.
"""

__version__ = "0.1.0"
