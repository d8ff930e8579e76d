"""GAN-Attack: the inverse-transformation network trained as the generator of a GAN.

The lab's robustness code (``docs/paper.md`` of the suite, section 10): generator = the ITN network (encrypted ->
plain, :func:`.networks.inverse_network`); discriminator = DCGAN-style with 4 x 4 convolutions and spectral
normalisation (:func:`.networks.discriminator`); BCE real/fake with the attacker's plain images as "real";
Adam (lr 2e-4, betas (0.5, 0.999)); 25 epochs; batch 64.

Method, per batch of the attacker's pairs ``(e, p)`` scaled to ``[-1, 1]``, ``g = G(e)``:

1. discriminator: minimise ``BCE(D(p), 1) + BCE(D(g.detach()), 0)`` (logits, ``BCEWithLogitsLoss``);
2. generator: minimise ``MSE(g, p) + adv_weight * BCE(D(g), 1)`` (the non-saturating generator loss).

Choices the literature leaves open, fixed here:
    * the generator's loss: paper.md calls the GAN-Attack "the same set-up with an adversarial loss"; a pure
      adversarial loss would only produce plausible images, not the image that was encrypted, so the ITN's MSE
      reconstruction loss is kept and the adversarial term added with ``adv_weight`` (default 0.01, the usual
      small weight of pix2pix-style content + adversarial objectives on an MSE scale);
    * epochs: default 3, sized for a CPU; the lab trains for 25 (pass ``epochs=25``);
    * one discriminator step per generator step; no learning-rate schedule; no label smoothing;
    * the best generator is picked by validation MSE on 10% held-out pairs, as in the ITN-Attack
      (:mod:`.training`), so the reported attack is the best reconstruction, not the last GAN state;
    * the discriminator reads whole training images, or their ``train_crop`` windows, and needs sides that are
      multiples of 8 (checked in ``fit`` and for ``train_crop``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from .base import register_attack
from .networks import discriminator, inverse_network
from .training import InverseNetworkAttack

__all__ = ["GANAttack"]


@register_attack("gan")
class GANAttack(InverseNetworkAttack):
    """GAN-Attack: ITN generator with MSE + adversarial loss against a spectrally normalised discriminator.

    Args:
        block_size: the scheme's block size ``M``.
        arch: generator architecture, ``"block"`` or ``"pixel"`` (:func:`.networks.inverse_network`).
        epochs: training epochs (default 3 for CPU; the lab uses 25).
        batch_size: training batch size (64).
        lr: Adam learning rate of both networks (2e-4).
        beta1: Adam's first beta (0.5; the second is 0.999).
        adv_weight: weight of the adversarial term in the generator's loss (0.01).
        val_fraction: share of the pairs held out to pick the best epoch (0.1).
        eval_batch_size: batch size of validation and reconstruction (256).
        train_crop: side of the random window training batches are cut to (``None``: whole images; see
            :mod:`.training`).
        code_width: the generator's code channels (``None``: ``C*M*M``; see :mod:`.networks`).
    """

    side_multiple = 8

    def __init__(self, block_size: int, arch: Literal["block", "pixel"] = "block", epochs: int = 3,
                 batch_size: int = 64, lr: float = 2e-4, beta1: float = 0.5, adv_weight: float = 0.01,
                 val_fraction: float = 0.1, eval_batch_size: int = 256, train_crop: int | None = None,
                 code_width: int | None = None) -> None:
        super().__init__(block_size, arch=arch, epochs=epochs, batch_size=batch_size, val_fraction=val_fraction,
                         eval_batch_size=eval_batch_size, train_crop=train_crop, code_width=code_width)
        if lr <= 0 or not 0 <= beta1 < 1 or adv_weight < 0:
            raise ValueError(f"need lr > 0, 0 <= beta1 < 1, adv_weight >= 0; got {lr}, {beta1}, {adv_weight}")
        self.lr = float(lr)
        self.beta1 = float(beta1)
        self.adv_weight = float(adv_weight)

    def _setup(self, channels: int) -> None:
        self.network = inverse_network(channels, self.block_size, self.arch, self.code_width).to(self.device)
        self.discriminator = discriminator(channels).to(self.device)
        betas = (self.beta1, 0.999)
        self.g_optimizer = torch.optim.Adam(self.network.parameters(), lr=self.lr, betas=betas)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=betas)

    def _train_mode(self, training: bool) -> None:
        super()._train_mode(training)
        self.discriminator.train(training)

    def _step(self, encrypted: torch.Tensor, plain: torch.Tensor) -> dict[str, float]:
        assert self.network is not None
        fake = self.network(encrypted)
        real_logits = self.discriminator(plain)
        fake_logits = self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()

        self.discriminator.requires_grad_(False)  # the generator step needs gradients through D, not of D
        gen_logits = self.discriminator(fake)
        mse = F.mse_loss(fake, plain)
        adv = F.binary_cross_entropy_with_logits(gen_logits, torch.ones_like(gen_logits))
        g_loss = mse + self.adv_weight * adv
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        self.discriminator.requires_grad_(True)
        return {"loss": mse.item(), "adv_loss": adv.item(), "d_loss": d_loss.item()}
