"""Networks of the learning-based attacks: the inverse-transformation network (ITN) and a DCGAN-style discriminator.

The lab's robustness code (``docs/paper.md`` of the suite, section 10) attacks 32 x 32 CIFAR-10 images with 4 x 4
blocks using

* for block schemes: ``Conv(3->48, k 4, s 4)-BN-ReLU -> 1x1 Conv(48->48)-BN-ReLU -> 1x1 Conv(48->512)-BN-ReLU ->
  PixelShuffle(4) -> 1x1 Conv(32->3) -> Tanh``: every block is mapped to a 48-dim code on its own, decoded to a
  ``32 x 4 x 4`` feature block and projected to colour (so the network can undo any per-block transformation,
  but not block scrambling, which moves content between blocks);
* for PE: 1x1 convolutions ``3->64->128->256->3``, then Tanh (pixel by pixel);
* for the GAN-Attack, the same network as generator and a DCGAN-style discriminator with 4 x 4 convolutions and
  spectral normalisation.

Choices the literature leaves open, fixed here:
    * block size ``M``: the block network is re-parameterised with stem kernel and stride ``M``, a code of
      ``C*M*M`` channels (full rank: the 48 of the lab's network is ``3*4*4``, a 16x bottleneck if kept at
      ``M = 16``; ``code_width`` sets another), a ``32*M*M``-channel third layer and ``PixelShuffle(M)`` (paper.md
      section 10, "Scaling"); for ``M = 4`` and colour images it is exactly the lab's network. At ``M = 16`` the
      code has 768 channels and the third layer 8192 (6.3 M weights), which is still cheap as it runs once per
      block;
    * channels ``C``: 3 for colour schemes, 1 for the grayscale planes of grayscale-based EtC (``C`` in and out);
    * pixel network: BatchNorm + ReLU after each hidden 1x1 convolution (3->64->128->256), none after the last;
    * convolutions before BatchNorm carry no bias (it would be cancelled by the BN shift); the final projections do;
    * discriminator: ``C -> 64 -> 128 -> 256`` with 4 x 4, stride 2, padding 1 convolutions, each spectrally
      normalised (``torch.nn.utils.parametrizations.spectral_norm``) and followed by LeakyReLU(0.2), no
      BatchNorm (spectral norm takes its place), then a spectrally normalised 1x1 convolution to one channel and a
      global average over the remaining map: one logit per image for any input whose sides are multiples of 8.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .training import ARCHS, code_width_for

__all__ = ["ARCHS", "Discriminator", "code_width_for", "discriminator", "inverse_network"]


def _conv_bn_relu(c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]


def inverse_network(channels: int, block_size: int, arch: Literal["block", "pixel"] = "block",
                    code_width: int | None = None) -> nn.Sequential:
    """The ITN (encrypted -> plain), inputs and outputs in ``[-1, 1]`` of shape ``(N, C, H, W)``.

    Args:
        channels: ``C``, 3 for colour images, 1 for grayscale planes.
        block_size: ``M``; for ``arch="block"`` H and W must be multiples of it (unused by ``"pixel"``).
        arch: ``"block"`` (block-wise encoder/decoder, for block schemes) or ``"pixel"`` (1x1 convolutions, for PE).
        code_width: channels of the block network's code (:func:`code_width_for`; default ``C*M*M``).
    """
    if channels < 1:
        raise ValueError(f"channels must be positive, got {channels}")
    if block_size < 1:
        raise ValueError(f"block size must be positive, got {block_size}")
    if arch == "block":
        m, code = block_size, code_width_for(channels, block_size, code_width)
        layers = [*_conv_bn_relu(channels, code, kernel=m, stride=m), *_conv_bn_relu(code, code),
                  *_conv_bn_relu(code, 32 * m * m), nn.PixelShuffle(m), nn.Conv2d(32, channels, 1), nn.Tanh()]
    elif arch == "pixel":
        layers = [*_conv_bn_relu(channels, 64), *_conv_bn_relu(64, 128), *_conv_bn_relu(128, 256),
                  nn.Conv2d(256, channels, 1), nn.Tanh()]
    else:
        raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    return nn.Sequential(*layers)


class Discriminator(nn.Module):
    """DCGAN-style discriminator with spectral normalisation; ``(N, C, H, W)`` in ``[-1, 1]`` -> ``(N,)`` logits.

    Args:
        channels: ``C`` of the images.
        width: channels of the first convolution (doubled by each of the next two).
    """

    def __init__(self, channels: int, width: int = 64) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels must be positive, got {channels}")
        widths = [channels, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for c_in, c_out in zip(widths[:-1], widths[1:]):
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, 2, 1)), nn.LeakyReLU(0.2, inplace=True)]
        layers.append(spectral_norm(nn.Conv2d(widths[-1], 1, 1)))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % 8 or x.shape[-1] % 8:
            raise ValueError(f"the discriminator needs sides that are multiples of 8, got {tuple(x.shape[-2:])}")
        return self.features(x).mean(dim=(1, 2, 3))


def discriminator(channels: int) -> Discriminator:
    """The GAN-Attack's discriminator for ``channels``-channel images (sides multiples of 8)."""
    return Discriminator(channels)
