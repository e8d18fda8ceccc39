"""Networks: the package's UNet (shipped weights, training) and IR-SDE/DA-CLIP architectures.

- [`unet`][mrs_numerics.models.unet]:
  [`ConditionalUNet`][mrs_numerics.models.unet.ConditionalUNet], ``model(x, t, mu)``;
- [`registry`][mrs_numerics.models.registry]: the shipped networks, their recorded facts and
  loading;
- [`training`][mrs_numerics.models.training]: how they were trained (``mrs-numerics train``);
- [`checkpoints`][mrs_numerics.models.checkpoints]: IR-SDE/DA-CLIP checkpoints (option files,
  training schedule, strict loading) for
  [`IRSDEConditionalUNet`][mrs_numerics.models.irsde_unet.IRSDEConditionalUNet] and
  [`DACLIPConditionalUNet`][mrs_numerics.models.daclip_unet.DACLIPConditionalUNet], state-dict
  compatible with the originals and computing the same function;
- [`irsde_options`][mrs_numerics.models.irsde_options]: what their option files may hold,
  field by field;
- [`input_files`][mrs_numerics.models.input_files]: the one loader of users' files (torch files
  with ``weights_only``, YAML/JSON), one line per bad file.
"""

from mrs_numerics.models.checkpoints import (
    irsde_schedule,
    load_context,
    load_irsde_checkpoint,
    read_options,
)
from mrs_numerics.models.daclip_unet import DACLIPConditionalUNet
from mrs_numerics.models.irsde_unet import IRSDEConditionalUNet
from mrs_numerics.models.unet import ConditionalUNet

__all__ = [
    "ConditionalUNet",
    "DACLIPConditionalUNet",
    "IRSDEConditionalUNet",
    "irsde_schedule",
    "load_context",
    "load_irsde_checkpoint",
    "read_options",
]
