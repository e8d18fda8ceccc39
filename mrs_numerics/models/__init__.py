"""Networks: the package's conditional UNet, its shipped weights (registry) and its training."""

from mrs_numerics.models.unet import ConditionalUNet

__all__ = ["ConditionalUNet"]
