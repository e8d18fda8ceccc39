"""Small denoising networks that drive the Mean-Reverting samplers in tests and benchmarks."""

from mrs_numerics.models.unet import ConditionalUNet

__all__ = ["ConditionalUNet"]
