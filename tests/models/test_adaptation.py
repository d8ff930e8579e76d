"""Adaptation-network baselines (Tanaka for LE, Madono for ELE/EtC) in front of ResNet-18 (CPU, seconds)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from etcbench.ciphers.blocks import from_blocks, to_blocks
from etcbench.models.adaptation import (
    AdaptedClassifier,
    BatchedSpectralNorm,
    MadonoAdaptation,
    TanakaAdaptation,
    build_adapted,
    madono_smoothness,
)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kind", ["tanaka", "madono"])
@pytest.mark.parametrize("size, block", [(32, 4), (64, 16)])
def test_output_shapes(kind, size, block):
    torch.manual_seed(0)
    model = build_adapted(kind, 10, size, block)
    assert isinstance(model, AdaptedClassifier)
    assert isinstance(model.adaptation, TanakaAdaptation if kind == "tanaka" else MadonoAdaptation)
    # the classifier takes the adapted map at full resolution: CIFAR stem (3x3, stride 1, no max-pool) up to 64 px
    assert model.classifier.conv1.in_channels == 16 and model.classifier.stem_type == "cifar"
    assert model.classifier.conv1.kernel_size == (3, 3) and model.classifier.conv1.stride == (1, 1)
    assert isinstance(model.classifier.maxpool, torch.nn.Identity)
    logits = model(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 10)
    assert model.last_adapted is not None and model.last_adapted.shape == (2, 16, size, size)


def test_tanaka_is_shared_and_madono_grows_with_the_number_of_blocks():
    small, large = build_adapted("tanaka", 10, 32, 4), build_adapted("tanaka", 10, 64, 4)
    assert _count(small.adaptation) == _count(large.adaptation) == 3 * 16 * 256 + 2 * 256
    small, large = MadonoAdaptation(32, 4), MadonoAdaptation(64, 4)
    assert (small.num_blocks, large.num_blocks) == (64, 256)
    assert small.weight.shape == (64, 48, 256) and large.weight.shape == (256, 48, 256)
    assert small.u.shape == (64, 64) and large.u.shape == (256, 256)
    per_block = 48 * 256 + 2 * 256  # weights and BatchNorm affine parameters of one position
    assert _count(small) == 64 * per_block + 64 ** 2
    assert _count(large) == 256 * per_block + 256 ** 2


def test_penalty_u_vanishes_exactly_on_permutations():
    torch.manual_seed(0)
    adapt = MadonoAdaptation(16, 4, u_init="identity")  # 16 positions
    init = adapt.penalty_u().item()
    assert 0 < init < 8.0 / 16 ** 2  # identity plus noise of std 0.01: about 32 rows and columns x 0.12, over n^2
    perm = torch.randperm(16)
    with torch.no_grad():
        adapt.u.copy_(torch.eye(16)[perm])
        assert abs(adapt.penalty_u().item()) < 1e-7
        adapt.u.copy_(torch.eye(16)[perm] * torch.where(torch.rand(16) < 0.5, -2.0, 1.0)[:, None])  # signed, scaled
        assert abs(adapt.penalty_u().item()) < 1e-7
        adapt.u.copy_(torch.randn(16, 16))
        assert adapt.penalty_u().item() > 10 * init
        adapt.u.fill_(1.0 / 16)  # doubly stochastic but dense: 2 * 16 * (1 - 1/4), over 16^2
        assert adapt.penalty_u().item() == pytest.approx(24.0 / 256, rel=1e-5)


def test_u_starts_as_the_originals_kaiming_uniform_draw():
    torch.manual_seed(1)
    u = MadonoAdaptation(32, 4).u.detach()  # 64 positions: uniform in +-1/8
    assert u.abs().max() <= 1 / 8 and u.abs().max() > 0.12 and abs(u.mean()) < 0.01
    assert not torch.allclose(torch.diagonal(u), torch.ones(64), atol=0.5)  # not the identity
    with pytest.raises(ValueError, match="u_init"):
        MadonoAdaptation(32, 4, u_init="eye")


def test_smoothness_is_squared_differences_over_the_first_three_channels():
    assert madono_smoothness(torch.full((2, 16, 8, 8), 3.5)).item() == 0.0
    # steps of 1 horizontally in the first 3 channels: 3 channels x 7 rows x 7 columns of 1, over (7 * 8 * 16) and N
    ramp = torch.zeros(2, 16, 8, 8)
    ramp[:, :3] = torch.arange(8.0)
    assert madono_smoothness(ramp).item() == pytest.approx(2 * 3 * 7 * 7 / (7 * 8 * 16) / 2)
    assert madono_smoothness(ramp * 2).item() == pytest.approx(4 * madono_smoothness(ramp).item())  # squared
    later = torch.zeros(2, 16, 8, 8)
    later[:, 3:] = torch.randn(2, 13, 8, 8)
    assert madono_smoothness(later).item() == 0.0  # channels 3.. do not count
    assert MadonoAdaptation.smoothness(torch.randn(2, 16, 8, 8)).item() > 0


def _original_losses(mat: torch.Tensor, feature: torch.Tensor) -> tuple[float, float]:
    """Madono et al.'s loss terms written step by step as their code does (proposed_cifar10_ELE.py, util_norm.py):
    the doubly stochastic constraint over the 64 rows and columns of U, scaled by 0.001 / (64 * 64), and
    total_variation_norm (beta 2) of the adapted 16 x 32 x 32 map, scaled by 0.1 / batch size."""
    dsc = 0.0
    for i in range(64):
        dsc += torch.abs(mat[i, :]).sum() - torch.sqrt((mat[i, :] * mat[i, :]).sum())
        dsc += torch.abs(mat[:, i]).sum() - torch.sqrt((mat[:, i] * mat[:, i]).sum())
    dsc = 0.001 * dsc / (64 * 64)
    total = 0.0
    for c in range(3):
        to_check = feature[:, c, :-1, :-1]
        one_bottom = feature[:, c, 1:, :-1]
        one_right = feature[:, c, :-1, 1:]
        total += (((to_check - one_bottom) ** 2 + (to_check - one_right) ** 2) ** (2 / 2)).sum()
    tv = 0.1 * (total / (31 * 32 * 16)) / feature.size()[0]
    return float(dsc), float(tv)


def test_regularisation_matches_a_step_by_step_reimplementation_of_the_original():
    torch.manual_seed(3)
    model = build_adapted("madono", 10, 32, 4)  # the original's setting: 64 blocks of 4 px, 16-channel map
    model(torch.randn(3, 3, 32, 32))
    dsc, tv = _original_losses(model.adaptation.u.detach(), model.last_adapted.detach())
    assert model.regularization_loss().item() == pytest.approx(dsc + tv, rel=1e-5)
    assert (0.001 * model.adaptation.penalty_u()).item() == pytest.approx(dsc, rel=1e-5)
    assert (0.1 * madono_smoothness(model.last_adapted)).item() == pytest.approx(tv, rel=1e-5)


def test_regularization_loss_weights_and_zero_for_tanaka():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    tanaka = build_adapted("tanaka", 10, 32, 4)
    tanaka(x)
    reg = tanaka.regularization_loss()
    assert reg.shape == () and reg.item() == 0.0
    madono = build_adapted("madono", 10, 32, 4, w_u=0.5, w_s=2.0)
    assert madono.regularization_loss().item() == pytest.approx(0.5 * madono.adaptation.penalty_u().item())
    madono(x)
    expected = 0.5 * madono.adaptation.penalty_u() + 2.0 * madono_smoothness(madono.last_adapted)
    assert torch.allclose(madono.regularization_loss(), expected)
    assert (build_adapted("madono", 10, 32, 4).w_u, build_adapted("madono", 10, 32, 4).w_s) == (1e-3, 0.1)


@pytest.mark.parametrize("kind", ["tanaka", "madono"])
def test_one_training_step_changes_parameters(kind):
    torch.manual_seed(0)
    model = build_adapted(kind, 10, 32, 4).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 7])
    loss = F.cross_entropy(model(x), y) + model.regularization_loss()
    assert torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    watched = ["classifier.fc.weight", "classifier.conv1.weight"]
    watched += ["adaptation.conv.weight"] if kind == "tanaka" else ["adaptation.weight", "adaptation.u"]
    for name in watched:
        p = dict(model.named_parameters())[name]
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
        assert not torch.equal(p.detach(), before[name]), name
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_batched_spectral_norm_bounds_each_positions_singular_value():
    torch.manual_seed(0)
    raw = torch.randn(64, 48, 256) * torch.logspace(-2, 2, 64)[:, None, None]  # very different scales
    norm = BatchedSpectralNorm(raw, power_iterations=5).train()
    for _ in range(3):
        normalised = norm(raw)
    sigma = torch.linalg.matrix_norm(normalised, ord=2)
    # power iteration estimates sigma from below, so the normalised norm approaches 1 from above
    assert sigma.shape == (64,) and (sigma >= 1 - 1e-4).all() and (sigma <= 1.1).all(), sigma
    u = norm.u.clone()
    norm.eval()(raw)
    assert torch.equal(norm.u, u)  # no power iteration in eval mode
    # the Madono network's effective per-position weights are normalised the same way
    adapt = MadonoAdaptation(32, 4).train()
    with torch.no_grad():
        adapt.weight.mul_(100)
    sigma = torch.linalg.matrix_norm(adapt.spectral(adapt.weight), ord=2)
    assert (sigma <= 1.1).all() and (sigma >= 1 - 1e-4).all(), sigma


def _tie_positions(adapt: MadonoAdaptation) -> None:
    """Give every block position the same sub-network (weights, power-iteration vectors, BatchNorm)."""
    n, f = adapt.num_blocks, adapt.features
    with torch.no_grad():
        adapt.weight.copy_(adapt.weight[:1].expand_as(adapt.weight))
        adapt.spectral.u.copy_(adapt.spectral.u[:1].expand_as(adapt.spectral.u))
        adapt.spectral.v.copy_(adapt.spectral.v[:1].expand_as(adapt.spectral.v))
        for name, value in [("weight", 1 + 0.3 * torch.randn(f)), ("bias", 0.2 * torch.randn(f)),
                            ("running_mean", 0.1 * torch.randn(f)), ("running_var", 0.5 + torch.rand(f))]:
            getattr(adapt.norm, name).copy_(value.repeat(n))


def test_u_can_undo_a_block_permutation():
    torch.manual_seed(0)
    size, m = 32, 4
    adapt = MadonoAdaptation(size, m).eval()
    _tie_positions(adapt)
    n = adapt.num_blocks
    x = torch.randn(2, 3, size, size)
    sigma = torch.randperm(n)
    inverse = torch.argsort(sigma)
    blocks = to_blocks(x.permute(0, 2, 3, 1), m)  # NHWC -> (N, n, M, M, 3)
    scrambled = from_blocks(blocks[:, inverse], size, size).permute(0, 3, 1, 2)  # block j <- block sigma^-1(j)
    with torch.no_grad():
        adapt.u.copy_(torch.eye(n))
        reference = adapt(x)
        assert not torch.allclose(adapt(scrambled), reference, atol=1e-3)  # identity U does not undo it
        adapt.u.copy_(torch.eye(n)[sigma])  # U[i, sigma(i)] = 1
        assert torch.allclose(adapt(scrambled), reference, atol=1e-5)


def test_tied_madono_equals_a_shared_block_conv():
    """With identical positions and U = I, Madono's network is Tanaka's (same slope): checks the block layout."""
    torch.manual_seed(0)
    size, m = 32, 4
    madono = MadonoAdaptation(size, m).eval()
    _tie_positions(madono)
    tanaka = TanakaAdaptation(m, negative_slope=0.2).eval()
    with torch.no_grad():
        madono.u.copy_(torch.eye(madono.num_blocks))
        tanaka.conv.weight.copy_(madono.spectral(madono.weight)[0].T.reshape(madono.features, 3, m, m))
        tanaka.norm.load_state_dict({k: v[: madono.features] for k, v in madono.norm.state_dict().items()
                                     if k != "num_batches_tracked"}, strict=False)
        x = torch.randn(2, 3, size, size)
        assert torch.allclose(madono(x), tanaka(x), atol=1e-5)


def test_build_adapted_validates_its_arguments():
    with pytest.raises(ValueError, match="image_size 30 .* block_size 4"):
        build_adapted("madono", 10, 30, 4)
    with pytest.raises(ValueError, match="image_size 30 .* block_size 4"):
        build_adapted("tanaka", 10, 30, 4)
    with pytest.raises(ValueError, match="unknown adaptation"):
        build_adapted("pyramid", 10, 32, 4)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="u_noise"):
        build_adapted("tanaka", 10, 32, 4, u_noise=0.1)
    with pytest.raises(ValueError, match="expected"):
        MadonoAdaptation(32, 4)(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="not a multiple"):
        TanakaAdaptation(4)(torch.zeros(1, 3, 30, 30))
