"""Super-resolution generators and discriminators, their registry and checkpoint format.

Generators (registry name -> class), all ``(N, C, H, W) -> (N, C, H*scale, W*scale)`` on
reflectance normalised to roughly ``[0, 1]``:

- ``"srcnn"``: :class:`~s2scale.models.srcnn.SRCNN`
- ``"srresnet"``: :class:`~s2scale.models.srresnet.SRResNet`
- ``"esrgan"``: :class:`~s2scale.models.rrdbnet.ESRGANGenerator`
- ``"realesrgan"``: :class:`~s2scale.models.rrdbnet.RealESRGANGenerator`
- ``"srvgg"``: :class:`~s2scale.models.srvgg.SRVGGNetCompact`

Discriminators: ``"vgg"`` (:class:`~s2scale.models.discriminators.VGGStyleDiscriminator`) and
``"unet"`` (:class:`~s2scale.models.discriminators.UNetDiscriminatorSN`).

Examples
--------
>>> from s2scale.models import build_generator
>>> net = build_generator("realesrgan", bands=4, scale=2, num_feat=8, num_block=1, num_grow_ch=4)
>>> (net.arch, net.bands, net.scale)
('realesrgan', 4, 2)
"""

from __future__ import annotations

from s2scale.models.adapt import adapt_bands
from s2scale.models.checkpoint import FORMAT, FORMAT_VERSION, Checkpoint, Normalization
from s2scale.models.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from s2scale.models.registry import (
    DISCRIMINATORS,
    GENERATORS,
    SCALES,
    build_discriminator,
    build_generator,
)
from s2scale.models.rrdbnet import ESRGANGenerator, RealESRGANGenerator, RRDBNet
from s2scale.models.spec import (
    SHIPPED,
    ModelSpec,
    is_registry_name,
    model_name,
    read_checkpoint,
    resolve_model,
    weights_path,
)
from s2scale.models.srcnn import SRCNN
from s2scale.models.srresnet import SRResNet
from s2scale.models.srvgg import SRVGGNetCompact
from s2scale.models.weights import export_half, import_basicsr, load_generator, save_checkpoint

__all__ = [
    "DISCRIMINATORS",
    "FORMAT",
    "FORMAT_VERSION",
    "GENERATORS",
    "SCALES",
    "SHIPPED",
    "SRCNN",
    "Checkpoint",
    "ESRGANGenerator",
    "ModelSpec",
    "Normalization",
    "RRDBNet",
    "RealESRGANGenerator",
    "SRResNet",
    "SRVGGNetCompact",
    "UNetDiscriminatorSN",
    "VGGStyleDiscriminator",
    "adapt_bands",
    "build_discriminator",
    "build_generator",
    "export_half",
    "import_basicsr",
    "is_registry_name",
    "load_generator",
    "model_name",
    "read_checkpoint",
    "resolve_model",
    "save_checkpoint",
    "weights_path",
]
