"""GAN-Attacks: the inverse-transformation network trained as the generator of a GAN.

The lab's robustness code (``docs/paper.md`` of the suite, section 10: ``gan_attack_train.py`` with its
``attack_dataset.py``): generator = the ITN network (encrypted -> plain, :func:`.networks.inverse_network`);
discriminator = DCGAN-style with 4 x 4 convolutions and spectral normalisation (:func:`.networks.discriminator`);
Adam (lr 2e-4, betas (0.5, 0.999)); 25 epochs; batch 64. Two attackers use it:

* ``gan`` (:class:`GANAttack`, the lab's): the cloud that holds the training images encrypted with the **target
  key** and some plain images, but no pairs. The encrypted and the plain set are drawn in independent orders
  (:mod:`.training`, ``paired = False``), so no batch pairs an image with its own ciphertext, and the loss is the
  adversarial BCE alone. Per batch of ciphertexts ``e`` and unrelated plain images ``p``, ``g = G(e)``:

  1. discriminator: minimise ``BCE(D(p), 1) + BCE(D(g.detach()), 0)`` (logits, ``BCEWithLogitsLoss``);
  2. generator: minimise ``BCE(D(g), 1)`` (the non-saturating generator loss).

* ``gan-paired`` (:class:`PairedGANAttack`, etcbench's earlier form): the ITN's chosen-plaintext attacker (pairs
  under the attacker's own keys) with the generator loss ``MSE(g, p) + adv_weight * BCE(D(g), 1)``; it is the ITN
  with an adversarial term, kept to compare with the lab's form.

Choices the literature leaves open, fixed here:
    * epochs: default 3, sized for a CPU; the lab trains for 25 (pass ``epochs=25``);
    * one discriminator step per generator step; no learning-rate schedule; no label smoothing;
    * ``gan`` keeps the last epoch's generator (without pairs there is no validation MSE to pick one by);
      ``gan-paired`` picks the best generator by validation MSE on 10% held-out pairs, as the ITN-Attack
      (:mod:`.training`);
    * ``gan-paired``'s adversarial weight ``adv_weight`` (default 0.01, the usual small weight of pix2pix-style
      content + adversarial objectives on an MSE scale);
    * the discriminator reads whole training images, or their ``train_crop`` windows, and needs sides that are
      multiples of 8 (checked in ``fit`` and for ``train_crop``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .base import register_attack
from .training import InverseNetworkAttack

if TYPE_CHECKING:  # torch is imported when the networks are built (the registry loads without it)
    import torch

__all__ = ["GANAttack", "PairedGANAttack"]


class _AdversarialAttack(InverseNetworkAttack):
    """What both GAN-Attacks share: generator, discriminator, their Adam optimisers and the discriminator step."""

    side_multiple = 8

    def __init__(self, block_size: int, arch: Literal["block", "pixel"], epochs: int, batch_size: int, lr: float,
                 beta1: float, val_fraction: float, eval_batch_size: int, train_crop: int | None,
                 code_width: int | None) -> None:
        super().__init__(block_size, arch=arch, epochs=epochs, batch_size=batch_size, val_fraction=val_fraction,
                         eval_batch_size=eval_batch_size, train_crop=train_crop, code_width=code_width)
        if lr <= 0 or not 0 <= beta1 < 1:
            raise ValueError(f"need lr > 0 and 0 <= beta1 < 1; got {lr}, {beta1}")
        self.lr = float(lr)
        self.beta1 = float(beta1)

    def _setup(self, channels: int) -> None:
        import torch

        from .networks import discriminator, inverse_network

        self.network = inverse_network(channels, self.block_size, self.arch, self.code_width).to(self.device)
        self.discriminator = discriminator(channels).to(self.device)
        betas = (self.beta1, 0.999)
        self.g_optimizer = torch.optim.Adam(self.network.parameters(), lr=self.lr, betas=betas)
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=self.lr, betas=betas)

    def _train_mode(self, training: bool) -> None:
        super()._train_mode(training)
        self.discriminator.train(training)

    def _discriminator_step(self, fake: torch.Tensor, plain: torch.Tensor) -> float:
        import torch
        import torch.nn.functional as F

        real_logits = self.discriminator(plain)
        fake_logits = self.discriminator(fake.detach())
        d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                  + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()
        return d_loss.item()

    def _generator_step(self, fake: torch.Tensor, plain: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def _step(self, encrypted: torch.Tensor, plain: torch.Tensor) -> dict[str, float]:
        assert self.network is not None
        fake = self.network(encrypted)
        d_loss = self._discriminator_step(fake, plain)
        self.discriminator.requires_grad_(False)  # the generator step needs gradients through D, not of D
        losses = self._generator_step(fake, plain)
        self.discriminator.requires_grad_(True)
        return {**losses, "d_loss": d_loss}

    def _fool(self, fake: torch.Tensor) -> torch.Tensor:
        import torch
        import torch.nn.functional as F

        logits = self.discriminator(fake)
        return F.binary_cross_entropy_with_logits(logits, torch.ones_like(logits))


@register_attack("gan")
class GANAttack(_AdversarialAttack):
    """The lab's GAN-Attack: target-key ciphertexts and unrelated plain images, adversarial loss alone.

    ``fit(plain, encrypted)`` takes plain images and ciphertexts *of other images* under the target key (any
    lengths; never pairs). The reported ``loss`` of an epoch is the generator's adversarial loss.

    Args:
        block_size: the scheme's block size ``M``.
        arch: generator architecture, ``"block"`` or ``"pixel"`` (:func:`.networks.inverse_network`).
        epochs: training epochs (default 3 for CPU; the lab uses 25).
        batch_size: training batch size (64).
        lr: Adam learning rate of both networks (2e-4).
        beta1: Adam's first beta (0.5; the second is 0.999).
        eval_batch_size: batch size of reconstruction (256).
        train_crop: side of the random window training batches are cut to (``None``: whole images).
        code_width: the generator's code channels (``None``: ``C*M*M``; see :mod:`.networks`).
    """

    paired = False

    def __init__(self, block_size: int, arch: Literal["block", "pixel"] = "block", epochs: int = 3,
                 batch_size: int = 64, lr: float = 2e-4, beta1: float = 0.5, eval_batch_size: int = 256,
                 train_crop: int | None = None, code_width: int | None = None) -> None:
        super().__init__(block_size, arch, epochs, batch_size, lr, beta1, 0.0, eval_batch_size, train_crop,
                         code_width)

    def _generator_step(self, fake: torch.Tensor, plain: torch.Tensor) -> dict[str, float]:
        adv = self._fool(fake)
        self.g_optimizer.zero_grad(set_to_none=True)
        adv.backward()
        self.g_optimizer.step()
        return {"loss": adv.item()}


@register_attack("gan-paired")
class PairedGANAttack(_AdversarialAttack):
    """The ITN's attacker with a GAN: the attacker's own pairs, MSE plus a weighted adversarial loss.

    Args:
        block_size: the scheme's block size ``M``.
        arch: generator architecture, ``"block"`` or ``"pixel"`` (:func:`.networks.inverse_network`).
        epochs: training epochs (default 3 for CPU).
        batch_size: training batch size (64).
        lr: Adam learning rate of both networks (2e-4).
        beta1: Adam's first beta (0.5; the second is 0.999).
        adv_weight: weight of the adversarial term in the generator's loss (0.01).
        val_fraction: share of the pairs held out to pick the best epoch (0.1).
        eval_batch_size: batch size of validation and reconstruction (256).
        train_crop: side of the random window training batches are cut to (``None``: whole images).
        code_width: the generator's code channels (``None``: ``C*M*M``; see :mod:`.networks`).
    """

    def __init__(self, block_size: int, arch: Literal["block", "pixel"] = "block", epochs: int = 3,
                 batch_size: int = 64, lr: float = 2e-4, beta1: float = 0.5, adv_weight: float = 0.01,
                 val_fraction: float = 0.1, eval_batch_size: int = 256, train_crop: int | None = None,
                 code_width: int | None = None) -> None:
        super().__init__(block_size, arch, epochs, batch_size, lr, beta1, val_fraction, eval_batch_size, train_crop,
                         code_width)
        if adv_weight < 0:
            raise ValueError(f"need adv_weight >= 0, got {adv_weight}")
        self.adv_weight = float(adv_weight)

    def _generator_step(self, fake: torch.Tensor, plain: torch.Tensor) -> dict[str, float]:
        from torch.nn.functional import mse_loss

        mse = mse_loss(fake, plain)
        adv = self._fool(fake)
        g_loss = mse + self.adv_weight * adv
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()
        return {"loss": mse.item(), "adv_loss": adv.item()}
