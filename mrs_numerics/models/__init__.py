"""Networks: the package's conditional UNet, its shipped weights (registry) and its training.

- [`unet`][mrs_numerics.models.unet]:
  [`ConditionalUNet`][mrs_numerics.models.unet.ConditionalUNet], ``model(x, t, mu)``;
- [`registry`][mrs_numerics.models.registry]: the shipped networks, their recorded facts and
  loading;
- [`training`][mrs_numerics.models.training]: how they were trained (``mrs-numerics train``).
"""

from mrs_numerics.models.unet import ConditionalUNet

__all__ = ["ConditionalUNet"]
