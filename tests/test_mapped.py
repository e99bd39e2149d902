"""MappedGenerator and GaussianPrior (issue 34 item 2): codes in Z, W and W+ of a mapping + synthesis G."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmarks.stylegan2.architecture import StyleGAN2Config
from discinvert import GaussianPrior, MappedGenerator
from discinvert.latents import LatentSampler
from tests.conftest import assert_untouched, hook_counts, snapshot
from tests.stylegan2_models import tiny_stylegan2

TINY = StyleGAN2Config(z_dim=16, w_dim=16, mapping_layers=2, channels=(16, 16, 8, 8))


def _generator() -> nn.Module:
    """A tiny reference StyleGAN2 G as a user hands it over (train mode), its w_avg moved as by training."""
    generator, _ = tiny_stylegan2(TINY)
    return generator.train()


def _draw(mapped: MappedGenerator, n: int = 64, seed: int = 3) -> torch.Tensor:
    return mapped.sample(n, torch.Generator().manual_seed(seed), torch.device("cpu"))


# ----------------------------------------------------------------------------- forward in each space
def test_forward_in_z_is_g_with_constant_noise() -> None:
    generator = _generator().eval()
    mapped = MappedGenerator.nvidia(generator, space="z")
    z = torch.randn(5, TINY.z_dim, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(mapped(z), generator(z, noise_mode="const"))
        # the noise is fixed: a second call gives the same images
        assert torch.equal(mapped(z), mapped(z))
    assert mapped.latent_shape == (TINY.z_dim,)


def test_w_broadcast_is_w_plus_with_repeated_w() -> None:
    generator = _generator().eval()
    w_space = MappedGenerator.nvidia(generator, space="w")
    w_plus = MappedGenerator.nvidia(generator, space="w+")
    w = torch.randn(4, TINY.w_dim, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(w_space(w), w_plus(w.unsqueeze(1).repeat(1, TINY.num_ws, 1)))
        # and W of a mapped z is G(z)
        z = torch.randn(4, TINY.z_dim, generator=torch.Generator().manual_seed(3))
        assert torch.equal(w_space(generator.mapping(z)[:, 0]), generator(z, noise_mode="const"))
    assert w_space.latent_shape == (TINY.w_dim,)
    assert w_plus.latent_shape == (TINY.num_ws, TINY.w_dim)


def test_forward_is_differentiable_in_the_codes() -> None:
    mapped = MappedGenerator.nvidia(_generator().eval(), space="w+")
    codes = _draw(mapped, 2).requires_grad_(True)
    mapped(codes).square().sum().backward()
    assert codes.grad is not None and bool(codes.grad.abs().sum() > 0)


# ----------------------------------------------------------------------------- the sampler
@pytest.mark.parametrize("space", ["z", "w", "w+"])
def test_sample_is_reproducible_and_uses_no_global_rng(space: str) -> None:
    mapped = MappedGenerator.nvidia(_generator(), space=space)
    sampler: LatentSampler = mapped.sample
    state = torch.get_rng_state()
    first = sampler(16, torch.Generator().manual_seed(5), torch.device("cpu"))
    second = sampler(16, torch.Generator().manual_seed(5), torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(first, second)
    assert not torch.equal(first, sampler(16, torch.Generator().manual_seed(6), torch.device("cpu")))
    assert first.shape == (16, *mapped.latent_shape) and first.dtype == torch.float32
    assert not first.requires_grad


def test_w_samples_are_the_mapped_z() -> None:
    generator = _generator()
    z = MappedGenerator.nvidia(generator, space="z")
    w = MappedGenerator.nvidia(generator, space="w")
    with torch.no_grad():
        expected = generator.eval().mapping(_draw(z, 8))[:, 0]
    assert torch.equal(_draw(w, 8), expected)


def test_truncation_moves_toward_w_avg() -> None:
    generator = _generator()
    centre = generator.mapping.w_avg
    full = _draw(MappedGenerator.nvidia(generator, space="w"))
    half = _draw(MappedGenerator.nvidia(generator, space="w", truncation_psi=0.5))
    torch.testing.assert_close(half - centre, 0.5 * (full - centre))
    assert float((half - centre).norm(dim=1).mean()) < 0.6 * float((full - centre).norm(dim=1).mean())
    # in Z the truncation is part of forward: G's own truncation at the same psi
    z = torch.randn(3, TINY.z_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        images = MappedGenerator.nvidia(generator.eval(), space="z", truncation_psi=0.5)(z)
        torch.testing.assert_close(images, generator(z, truncation_psi=0.5, noise_mode="const"))


def test_truncation_centre_follows_g_and_defaults_to_the_mapped_mean() -> None:
    generator = _generator()
    mapped = MappedGenerator.nvidia(generator, truncation_psi=0.7)
    assert mapped.w_avg is generator.mapping.w_avg  # read from G, not copied
    custom = MappedGenerator(generator, mapping=lambda g, z: g.mapping(z), synthesis=lambda g, ws: g.synthesis(ws, noise_mode="const"),
                             z_dim=TINY.z_dim, w_dim=TINY.w_dim, num_ws=TINY.num_ws, truncation_psi=0.7)
    with torch.no_grad():
        z = torch.randn(10_000, TINY.z_dim, generator=torch.Generator().manual_seed(0))
        expected = generator.eval().mapping(z)[:, 0].mean(0)
    torch.testing.assert_close(custom.w_avg, expected)
    assert "generator.mapping.w_avg" in custom.state_dict() and not any("_w_avg" in k for k in custom.state_dict())


def test_w_plus_samples_mix_styles() -> None:
    mapped = MappedGenerator.nvidia(_generator(), space="w+")  # mixing 0.9 by default
    codes = _draw(mapped, 64)
    differs = (codes != codes[:, :1]).any(dim=2)  # (N, num_ws): layer differs from layer 0
    mixed = differs.any(dim=1)
    assert 0 < int(mixed.sum()) < 64  # some samples mix, some (about 1 in 10) do not
    for row in differs[mixed]:  # a crossover: layers 0..k-1 from one z, k.. from another
        k = int(row.float().argmax())
        assert k >= 1 and bool(row[k:].all()) and not bool(row[:k].any())
    unmixed = MappedGenerator(mapped.generator, mapping=lambda g, z: g.mapping(z),
                              synthesis=lambda g, ws: g.synthesis(ws, noise_mode="const"), z_dim=TINY.z_dim,
                              w_dim=TINY.w_dim, num_ws=TINY.num_ws, mixing=0.0)
    plain = _draw(unmixed, 64)
    assert torch.equal(plain, plain[:, :1].expand_as(plain))


# ----------------------------------------------------------------------------- the prior
def test_standard_prior_penalty_is_the_old_term_exactly() -> None:
    prior = MappedGenerator.nvidia(_generator(), space="z").prior()
    assert prior.is_standard and prior.dim == TINY.z_dim
    codes = torch.randn(7, TINY.z_dim, generator=torch.Generator().manual_seed(0)) * 3
    assert torch.equal(prior.penalty(codes), codes.pow(2).flatten(1).mean(1))
    nested = torch.randn(7, 4, 5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(GaussianPrior.standard(5).penalty(nested), nested.pow(2).flatten(1).mean(1))


def test_correlated_prior_penalty_is_mahalanobis() -> None:
    rng = torch.Generator().manual_seed(0)
    d = 6
    a = torch.randn(d, d, generator=rng, dtype=torch.float64)
    cov = a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)
    mean = torch.randn(d, generator=rng, dtype=torch.float64)
    prior = GaussianPrior(mean, torch.linalg.cholesky(cov))
    assert not prior.is_standard
    codes = torch.randn(5, 3, d, generator=rng, dtype=torch.float64)  # (N, num_ws, w_dim)
    diff = codes - mean
    mahalanobis = torch.einsum("nli,ij,nlj->nl", diff, torch.linalg.inv(cov), diff)  # (N, L)
    torch.testing.assert_close(prior.penalty(codes), mahalanobis.sum(1) / (3 * d))
    # differentiable
    codes.requires_grad_(True)
    prior.penalty(codes).sum().backward()
    assert codes.grad is not None


@pytest.mark.parametrize("space", ["w", "w+"])
def test_prior_is_the_mappings_mean_and_covariance(space: str) -> None:
    generator = _generator()
    mapped = MappedGenerator.nvidia(generator, space=space, truncation_psi=0.8)
    prior = mapped.prior(n=4000, seed=1)
    assert prior.dim == TINY.w_dim
    codes = _draw(MappedGenerator.nvidia(generator, space="w", truncation_psi=0.8), 4000, seed=9).double()
    cov = torch.cov(codes.T)
    scale = float(cov.diagonal().mean())
    torch.testing.assert_close(prior.mean.double(), codes.mean(0), atol=0.1 * scale**0.5, rtol=0)
    estimated = prior.scale_tril.double() @ prior.scale_tril.double().T
    assert float((estimated - cov).abs().max()) < 0.15 * scale
    # the penalty of the prior's own samples is about 1; far codes are penalised more
    assert 0.8 < float(prior.penalty(codes.float().unsqueeze(1)).mean()) < 1.2
    assert bool((prior.penalty(codes.float()[:5].unsqueeze(1) + 10 * scale**0.5) > 5).all())


def test_prior_round_trips_through_its_tensors() -> None:
    prior = MappedGenerator.nvidia(_generator(), space="w").prior(n=500)
    again = GaussianPrior.from_tensors(prior.tensors(), dim=TINY.w_dim)
    assert torch.equal(again.mean, prior.mean) and torch.equal(again.scale_tril, prior.scale_tril)
    with pytest.raises(ValueError, match=r"expected the tensors \['mean', 'scale_tril'\], got \['mean'\]"):
        GaussianPrior.from_tensors({"mean": prior.mean})
    with pytest.raises(ValueError, match="expected codes of length 8, got a prior on 16"):
        GaussianPrior.from_tensors(prior.tensors(), dim=8)


# ----------------------------------------------------------------------------- bad arguments
def _custom(**overrides: object) -> MappedGenerator:
    options: dict[str, object] = dict(mapping=lambda g, z: g.mapping(z), synthesis=lambda g, ws: g.synthesis(ws),
                                      z_dim=TINY.z_dim, w_dim=TINY.w_dim, num_ws=TINY.num_ws)
    options.update(overrides)
    return MappedGenerator(_generator(), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"space": "s"}, r"space: expected one of \('z', 'w', 'w\+'\), got 's'"),
    ({"z_dim": 0}, r"z_dim: expected an int >= 1, got 0"),
    ({"num_ws": 2.5}, r"num_ws: expected an int >= 1, got 2.5"),
    ({"mapping": "G.mapping"}, r"mapping: expected a callable mapping\(G, z\) -> w, got str 'G.mapping'"),
    ({"synthesis": None}, r"synthesis: expected a callable synthesis\(G, ws\) -> images, got NoneType None"),
    ({"truncation_psi": 0.0}, r"truncation_psi: expected a positive finite float, got 0.0"),
    ({"truncation_psi": -0.5}, r"truncation_psi: expected a positive finite float, got -0.5"),
    ({"mixing": 1.5}, r"mixing: expected a probability in \[0, 1\], got 1.5"),
    ({"w_avg": torch.zeros(3)}, r"w_avg: expected a tensor of shape \(16,\) or None, got a torch.float32 tensor of shape \(3,\)"),
])
def test_bad_arguments_name_expected_and_got(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _custom(**overrides)


def test_wrong_code_shapes_and_mappings_are_refused() -> None:
    mapped = MappedGenerator.nvidia(_generator(), space="w+")
    with pytest.raises(ValueError, match=r"codes: expected shape \(N, 8, 16\) for space 'w\+', got a torch.float32 tensor of shape \(2, 16\)"):
        mapped(torch.zeros(2, TINY.w_dim))
    wrong = _custom(space="w", mapping=lambda g, z: z[:, :3])
    with pytest.raises(ValueError, match=r"mapping: expected w of shape \(4, 16\) or ws of shape \(4, 8, 16\), got a torch.float32 tensor of shape \(4, 3\)"):
        wrong.sample(4, torch.Generator(), torch.device("cpu"))
    layered = _custom(space="w", mapping=lambda g, z: torch.randn(z.shape[0], TINY.num_ws, TINY.w_dim, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="'w' needs a mapping that gives one w per image"):
        layered.sample(4, torch.Generator(), torch.device("cpu"))
    with pytest.raises(ValueError, match=r"rosinality's g_ema: expected the attributes \['style', 'style_dim', 'n_latent'\]"):
        MappedGenerator.rosinality(_generator())
    with pytest.raises(ValueError, match=r"noise_mode: expected one of \('const', 'none', 'random'\), got 'fixed'"):
        MappedGenerator.nvidia(_generator(), noise_mode="fixed")
    with pytest.raises(ValueError, match=r"codes: expected a tensor of shape \(N, ..., 16\)"):
        GaussianPrior.standard(16).penalty(torch.zeros(3, 4))
    with pytest.raises(ValueError, match="scale_tril: expected a lower-triangular matrix"):
        GaussianPrior(torch.zeros(2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="expected finite entries and a positive diagonal"):
        GaussianPrior(torch.zeros(2), torch.diag(torch.tensor([1.0, 0.0])))


# ----------------------------------------------------------------------------- the user's G
@pytest.mark.parametrize("space", ["z", "w", "w+"])
def test_g_comes_back_bit_identical(space: str) -> None:
    generator = _generator()  # train mode, requires_grad on: as handed over
    before = snapshot(generator)
    mapped = MappedGenerator.nvidia(generator, space=space, truncation_psi=0.7)
    codes = _draw(mapped, 4)
    mapped.prior(n=300)
    with torch.no_grad():
        mapped(codes)
    assert_untouched(before, generator)
    assert not hook_counts(generator)
    assert all(p.requires_grad for p in generator.parameters()) and generator.training


# ----------------------------------------------------------------------------- the other code bases' conventions
class _RosinalityLike(nn.Module):
    """rosinality's calling convention: ``style(z) -> w``, ``g([ws], input_is_latent=True, randomize_noise=False)``."""

    def __init__(self) -> None:
        super().__init__()
        self.style_dim, self.n_latent = 6, 4
        self.style = nn.Sequential(nn.Linear(6, 6), nn.LeakyReLU(0.2))
        self.to_image = nn.Linear(4 * 6, 3 * 4 * 4)

    def forward(self, styles: list[torch.Tensor], input_is_latent: bool = False,
                randomize_noise: bool = True) -> tuple[torch.Tensor, None]:
        assert input_is_latent and not randomize_noise
        latent = styles[0] if styles[0].dim() == 3 else styles[0].unsqueeze(1).repeat(1, self.n_latent, 1)
        return torch.tanh(self.to_image(latent.flatten(1))).view(-1, 3, 4, 4), None


class _LucidrainsLike(nn.Module):
    """lucidrains' ``StyleGAN2``: ``S(z) -> w``, ``G(styles (N, L, d), noise (N, S, S, 1))``."""

    class Generator(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.latent_dim, self.num_layers, self.image_size = 5, 3, 4
            self.to_image = nn.Linear(3 * 5, 3 * 4 * 4)

        def forward(self, styles: torch.Tensor, input_noise: torch.Tensor) -> torch.Tensor:
            assert input_noise.shape == (styles.shape[0], 4, 4, 1)
            return self.to_image(styles.flatten(1)).view(-1, 3, 4, 4) + input_noise.permute(0, 3, 1, 2)

    def __init__(self) -> None:
        super().__init__()
        self.S = nn.Linear(5, 5)
        self.G = self.Generator()


def test_rosinality_and_lucidrains_constructors_read_their_conventions() -> None:
    torch.manual_seed(0)
    ros = _RosinalityLike()
    mapped = MappedGenerator.rosinality(ros, space="w")
    assert (mapped.latent_shape, mapped.convention) == ((6,), "rosinality")
    w = _draw(mapped, 3)
    with torch.no_grad():
        z = _draw(MappedGenerator.rosinality(ros, space="z"), 3)
        assert torch.equal(w, ros.style(z))
        assert torch.equal(mapped(w), ros([w], input_is_latent=True, randomize_noise=False)[0])
    luc = _LucidrainsLike()
    mapped = MappedGenerator.lucidrains(luc, noise_seed=4)
    assert (mapped.latent_shape, mapped.convention) == ((3, 5), "lucidrains")
    codes = _draw(mapped, 2)
    noise = torch.rand((1, 4, 4, 1), generator=torch.Generator().manual_seed(4)).repeat(2, 1, 1, 1)
    with torch.no_grad():
        assert torch.equal(mapped(codes), luc.G(codes, noise))
        assert torch.equal(mapped(codes), MappedGenerator.lucidrains(luc, noise_seed=4)(codes))
        assert not torch.equal(mapped(codes), MappedGenerator.lucidrains(luc, noise_seed=5)(codes))
    assert mapped.space_record() == {"space": "w+", "z_dim": 5, "w_dim": 5, "num_ws": 3, "truncation_psi": 1.0,
                                     "mixing": 0.9, "convention": "lucidrains"}
