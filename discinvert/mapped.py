"""A generator seen through the latent space of its mapping network: codes in Z, W or W+.

StyleGAN-class generators are a mapping network ``z (N, z_dim) -> w`` followed by a synthesis network driven
by one style code per layer, ``ws (N, num_ws, w_dim)`` (the W+ space). :class:`MappedGenerator` wraps such a G
so that the rest of discinvert sees an ordinary ``G(codes) -> images`` whose codes live in the space chosen:

* ``"z"``: ``codes (N, z_dim)``, mapped, truncated, broadcast to every layer, synthesised;
* ``"w"``: ``codes (N, w_dim)``, one style for every layer, synthesised;
* ``"w+"``: ``codes (N, num_ws, w_dim)``, one style per layer, synthesised.

The library imports no StyleGAN class: two callables say how to reach the mapping and the synthesis of the
user's G, and the constructors :meth:`MappedGenerator.nvidia`, :meth:`MappedGenerator.rosinality` and
:meth:`MappedGenerator.lucidrains` write them for the three code bases researchers use. The noise inputs are
fixed inside the synthesis callable (constant noise buffers, or a noise image drawn once from a seed), so
fits and encodes are reproducible. :meth:`MappedGenerator.sample` is the space's own sampler (a
:data:`discinvert.latents.LatentSampler`) and :meth:`MappedGenerator.prior` its Gaussian prior
(:class:`GaussianPrior`), whose :meth:`GaussianPrior.penalty` is the prior term of ``refine`` and of a fit's
real-image stage in that space.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

import torch
from torch import nn

from discinvert.argument_checks import positive_float, positive_int
from discinvert.gan import check_module, model_device, model_dtype
from discinvert.guard import frozen

__all__ = ["GaussianPrior", "LatentSpace", "MappedGenerator", "SPACES", "check_generator_space", "check_space_record", "prior_dim",
           "space_latent_shape"]

LatentSpace = Literal["z", "w", "w+"]
SPACES: Final[tuple[str, ...]] = ("z", "w", "w+")
"""The latent spaces a :class:`MappedGenerator` can expose."""

CONVENTIONS: Final[tuple[str, ...]] = ("nvidia", "rosinality", "lucidrains", "custom")
_NOISE_MODES: Final[tuple[str, ...]] = ("const", "none", "random")
_RIDGE: Final[float] = 1e-3
"""Ridge added to an estimated covariance, relative to its mean variance: directions in which the mapping
hardly varies would otherwise dominate the penalty (and make the Cholesky factor fail)."""
_MAX_SIZE: Final[int] = 2**20
"""Largest ``z_dim``, ``w_dim`` or ``num_ws`` a stored space record may name (the codes' own bound applies too)."""
_RECORD_KEYS: Final[tuple[str, ...]] = ("space", "z_dim", "w_dim", "num_ws", "truncation_psi", "mixing", "convention")
_CENTRE_SAMPLES: Final[int] = 10_000
_CHUNK: Final[int] = 1_000

MappingFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]
SynthesisFn = Callable[[nn.Module, torch.Tensor], torch.Tensor]


@dataclass(frozen=True, eq=False)
class GaussianPrior:
    """A Gaussian prior ``N(mean, L L^T)`` on each code vector (each per-layer code in W+).

    Attributes:
        mean: ``(d,)``, the prior's mean (``d`` is ``z_dim`` or ``w_dim``).
        scale_tril: ``(d, d)``, the lower-triangular Cholesky factor ``L`` of the covariance (positive diagonal).

    Raises:
        ValueError: ``mean`` is not a 1-D floating tensor, ``scale_tril`` not a ``(d, d)`` lower-triangular
            matrix with a positive finite diagonal.
    """

    mean: torch.Tensor
    scale_tril: torch.Tensor

    def __post_init__(self) -> None:
        mean, tril = self.mean, self.scale_tril
        if not isinstance(mean, torch.Tensor) or mean.dim() != 1 or not mean.is_floating_point() or not len(mean):
            raise ValueError(f"mean: expected a non-empty 1-D floating tensor, got {_describe(mean)}.")
        d = mean.shape[0]
        if not isinstance(tril, torch.Tensor) or tuple(tril.shape) != (d, d) or not tril.is_floating_point():
            raise ValueError(f"scale_tril: expected a floating tensor of shape ({d}, {d}), got {_describe(tril)}.")
        if not torch.equal(tril, tril.tril()):
            raise ValueError("scale_tril: expected a lower-triangular matrix, got one with entries above the diagonal.")
        diagonal = tril.diagonal()
        if not bool(torch.isfinite(tril).all()) or not bool(torch.isfinite(mean).all()) or bool((diagonal <= 0).any()):
            raise ValueError("scale_tril: expected finite entries and a positive diagonal (a Cholesky factor), "
                             f"got a smallest diagonal entry {diagonal.min().item()!r}.")
        standard = not bool(mean.count_nonzero()) and torch.equal(tril, torch.eye(d, dtype=tril.dtype, device=tril.device))
        object.__setattr__(self, "_standard", standard)
        # One memory layout (a Cholesky factor comes column-major): the penalty is then the same bits for a
        # prior as estimated and as loaded from a file.
        object.__setattr__(self, "mean", mean.contiguous())
        object.__setattr__(self, "scale_tril", tril.contiguous())

    @classmethod
    def standard(cls, dim: int) -> GaussianPrior:
        """``N(0, I)`` on ``dim`` coordinates."""
        dim = positive_int(dim, "dim")
        return cls(torch.zeros(dim), torch.eye(dim))

    @property
    def dim(self) -> int:
        """``d``, the length of one code vector."""
        return int(self.mean.shape[0])

    @property
    def is_standard(self) -> bool:
        """Whether this is exactly ``N(0, I)``."""
        return bool(self._standard)  # type: ignore[attr-defined]

    def penalty(self, codes: torch.Tensor) -> torch.Tensor:
        """The prior term of each code: ``(N, ..., d) -> (N,)``.

        The mean over all elements of ``L^-1 (code - mean)`` squared (the whitening applied to the last dim), so
        for the standard normal it is exactly ``codes.pow(2).flatten(1).mean(1)``, the term discinvert always
        used for ``N(0, I)``; in W+ each per-layer code is whitened alike. Differentiable in ``codes``.

        Raises:
            ValueError: ``codes`` has fewer than 2 dims or its last dim is not ``d``.
        """
        if not isinstance(codes, torch.Tensor) or codes.dim() < 2 or codes.shape[-1] != self.dim:
            raise ValueError(f"codes: expected a tensor of shape (N, ..., {self.dim}), got {_describe(codes)}.")
        if self.is_standard:
            return codes.pow(2).flatten(1).mean(1)
        dtype = torch.promote_types(codes.dtype, torch.float32)
        flat = codes.to(dtype).reshape(-1, self.dim) - self.mean.to(codes.device, dtype)
        white = torch.linalg.solve_triangular(self.scale_tril.to(codes.device, dtype), flat.T, upper=False).T
        return white.reshape(codes.shape[0], -1).pow(2).mean(1).to(codes.dtype)

    def tensors(self) -> dict[str, torch.Tensor]:
        """``{"mean", "scale_tril"}``, contiguous CPU copies, for a weights file."""
        return {"mean": self.mean.detach().cpu().contiguous(), "scale_tril": self.scale_tril.detach().cpu().contiguous()}

    @classmethod
    def from_tensors(cls, tensors: Mapping[str, torch.Tensor], dim: int | None = None) -> GaussianPrior:
        """The prior :meth:`tensors` wrote, strictly: exactly the keys ``mean`` and ``scale_tril``.

        Raises:
            ValueError: other keys, a bad shape, or (``dim`` given) a code length other than ``dim``.
        """
        keys = sorted(tensors)
        if keys != ["mean", "scale_tril"]:
            raise ValueError(f"prior: expected the tensors ['mean', 'scale_tril'], got {keys}.")
        prior = cls(tensors["mean"], tensors["scale_tril"])
        if dim is not None and prior.dim != dim:
            raise ValueError(f"prior: expected codes of length {dim}, got a prior on {prior.dim} coordinates.")
        return prior


class MappedGenerator(nn.Module):
    """G = synthesis ∘ mapping, seen as a function of codes in Z, W or W+: ``forward(codes) -> images``.

    >>> Gm = MappedGenerator.nvidia(G, space="w+")               # doctest: +SKIP
    >>> inverter = fit_inverter(Gm, D, "b8")                      # doctest: +SKIP
    >>> ws = inverter.encode(images)                              # (N, num_ws, w_dim)   # doctest: +SKIP

    For another code base, say how to reach its two halves::

        Gm = MappedGenerator(G, mapping=lambda g, z: g.mapping_net(z),
                             synthesis=lambda g, ws: g.render(ws, noise=None),
                             z_dim=512, w_dim=512, num_ws=14, space="w")

    ``fit_inverter(Gm, ...)`` then takes ``latent_shape`` and ``latent_sampler`` from it, and the inverter
    records the space, keeps its Gaussian prior and needs a ``MappedGenerator`` of that space to load.

    Args:
        generator: the user's G; registered as the submodule ``generator`` (its weights are this module's only
            persistent state, so this module's ``state_dict`` is G's with the prefix ``generator.``).
        mapping: ``mapping(G, z) -> w``: ``z`` of shape ``(N, z_dim)`` to ``(N, w_dim)`` or to per-layer codes
            ``(N, num_ws, w_dim)``, without truncation.
        synthesis: ``synthesis(G, ws) -> images`` for ``ws`` of shape ``(N, num_ws, w_dim)``, with the noise
            inputs fixed inside (constant buffers or a seeded image), so that the same codes give the same images.
        z_dim, w_dim, num_ws: the sizes of ``z``, of one style code ``w`` and the number of style codes.
        space: ``"z"``, ``"w"`` or ``"w+"``: where the inverter's codes live.
        truncation_psi: ``> 0``; codes mapped from ``z`` (``forward`` in Z, :meth:`sample` and :meth:`prior` in W
            and W+) become ``w_avg + psi * (w - w_avg)``; 1 (the default) leaves them as mapped.
        w_avg: ``(w_dim,)``, the truncation centre. One of G's own buffers (``G.mapping.w_avg``) is read from G on
            every use, so it follows ``G.to(...)``; another tensor is copied. ``None``: the mean of ``w`` over
            10,000 mapped ``z`` (seed 0), computed here only when ``truncation_psi != 1``.
        mixing: in ``[0, 1]``; the probability that a W+ sample mixes two styles (crossover layer uniform in
            ``1 .. num_ws - 1``, per sample), so that an inverter learns per-layer codes.

    Attributes:
        generator, space, z_dim, w_dim, num_ws, truncation_psi, mixing: as given.
        convention: which code base ``mapping`` and ``synthesis`` follow, recorded in the inverter's config:
            ``"custom"`` here, ``"nvidia"``, ``"rosinality"`` or ``"lucidrains"`` from those constructors.

    Raises:
        ValueError: ``generator`` is not a module, ``mapping`` or ``synthesis`` not callable, a size not a
            positive int, ``space`` unknown, ``truncation_psi <= 0``, ``mixing`` outside
            ``[0, 1]``, ``w_avg`` not of shape ``(w_dim,)``.
    """

    def __init__(self, generator: nn.Module, *, mapping: MappingFn, synthesis: SynthesisFn, z_dim: int,
                 w_dim: int, num_ws: int, space: LatentSpace = "w+", truncation_psi: float = 1.0,
                 w_avg: torch.Tensor | None = None, mixing: float = 0.9) -> None:
        super().__init__()
        self.generator = check_module(generator, "generator")
        for name, fn, expected in (("mapping", mapping, "mapping(G, z) -> w"),
                                   ("synthesis", synthesis, "synthesis(G, ws) -> images")):
            if not callable(fn):
                raise ValueError(f"{name}: expected a callable {expected}, got {_describe(fn)}.")
        self._mapping, self._synthesis = mapping, synthesis
        self.z_dim, self.w_dim = positive_int(z_dim, "z_dim"), positive_int(w_dim, "w_dim")
        self.num_ws = positive_int(num_ws, "num_ws")
        if space not in SPACES:
            raise ValueError(f"space: expected one of {SPACES}, got {space!r}.")
        self.space: LatentSpace = space
        self.truncation_psi = positive_float(truncation_psi, "truncation_psi")
        if not isinstance(mixing, numbers.Real) or isinstance(mixing, bool) or not 0.0 <= mixing <= 1.0:
            raise ValueError(f"mixing: expected a probability in [0, 1], got {mixing!r}.")
        self.mixing = float(mixing)
        self.convention = "custom"
        self._centre_buffer: str | None = None  # the name of G's own buffer that is the truncation centre
        self.register_buffer("_w_avg", None, persistent=False)
        if w_avg is not None:
            if not isinstance(w_avg, torch.Tensor) or tuple(w_avg.shape) != (self.w_dim,):
                raise ValueError(f"w_avg: expected a tensor of shape ({self.w_dim},) or None, got {_describe(w_avg)}.")
            self._centre_buffer = next((name for name, b in generator.named_buffers() if b is w_avg), None)
            if self._centre_buffer is None:
                self._w_avg = w_avg.detach().clone()
        elif self.truncation_psi != 1.0:
            self._w_avg = self._mean_w()

    # ------------------------------------------------------------------ constructors for the usual code bases
    @classmethod
    def nvidia(cls, G: nn.Module, *, space: LatentSpace = "w+", c: torch.Tensor | None = None,
               noise_mode: str = "const", truncation_psi: float = 1.0) -> MappedGenerator:
        """NVIDIA's stylegan2-ada-pytorch / stylegan3 modules as their code loads them (``G_ema`` of a pickle).

        Reads ``G.z_dim``, ``G.w_dim``, ``G.num_ws``, ``G.mapping(z, c, truncation_psi=1) -> ws (N, num_ws,
        w_dim)``, ``G.synthesis(ws, noise_mode=noise_mode)`` (images in ``[-1, 1]``) and the truncation centre
        ``G.mapping.w_avg``.

        Args:
            c: the class condition of a conditional G, ``(c_dim,)`` or ``(1, c_dim)`` (used for every image) or
                ``(N, c_dim)``; ``None`` for an unconditional G.
            noise_mode: ``"const"`` (the fixed noise buffers, the default: reproducible), ``"none"`` (no noise)
                or ``"random"`` (fresh noise from torch's global RNG on every call: not reproducible).

        Raises:
            ValueError: G lacks one of those attributes, ``noise_mode`` is unknown, ``c`` is missing for a
                conditional G, or as :class:`MappedGenerator`.
        """
        check_module(G, "G")
        _require(G, ("z_dim", "w_dim", "num_ws", "mapping", "synthesis"), "NVIDIA's G")
        if noise_mode not in _NOISE_MODES:
            raise ValueError(f"noise_mode: expected one of {_NOISE_MODES}, got {noise_mode!r}.")
        c_dim = int(getattr(G, "c_dim", 0) or 0)
        if c_dim and c is None:
            raise ValueError(f"c: G is conditional (c_dim={c_dim}), expected a condition of shape ({c_dim},), "
                             "(1, c_dim) or (N, c_dim), got None.")
        if c is not None and (not isinstance(c, torch.Tensor) or c.dim() not in (1, 2) or c.shape[-1] != c_dim):
            raise ValueError(f"c: expected None or a tensor of shape ({c_dim},), (1, {c_dim}) or (N, {c_dim}), "
                             f"got {_describe(c)}.")
        condition = None if c is None else (c.reshape(1, -1) if c.dim() == 1 else c)

        def mapping(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
            labels = None
            if condition is not None:
                labels = condition.to(z.device, z.dtype)
                labels = labels.expand(z.shape[0], -1) if labels.shape[0] == 1 else labels
            return model.mapping(z, labels, truncation_psi=1)

        def synthesis(model: nn.Module, ws: torch.Tensor) -> torch.Tensor:
            return model.synthesis(ws, noise_mode=noise_mode)

        w_avg = getattr(G.mapping, "w_avg", None)
        mapped = cls(G, mapping=mapping, synthesis=synthesis, z_dim=int(G.z_dim), w_dim=int(G.w_dim),
                     num_ws=int(G.num_ws), space=space, truncation_psi=truncation_psi,
                     w_avg=w_avg if isinstance(w_avg, torch.Tensor) else None)
        mapped.convention = "nvidia"
        return mapped

    @classmethod
    def rosinality(cls, g_ema: nn.Module, *, space: LatentSpace = "w+", truncation_psi: float = 1.0) -> MappedGenerator:
        """rosinality/stylegan2-pytorch's ``Generator`` (``g_ema``).

        Reads ``g_ema.style_dim`` (``z_dim = w_dim``), ``g_ema.n_latent`` (``num_ws``), the mapping
        ``g_ema.style(z) -> w (N, style_dim)`` and the synthesis ``g_ema([ws], input_is_latent=True,
        randomize_noise=False) -> (images, _)`` (the fixed noise buffers; images in ``[-1, 1]``). The truncation
        centre is the mean of the mapped samples (that code base estimates it from random draws).

        Raises:
            ValueError: ``g_ema`` lacks one of those attributes, or as :class:`MappedGenerator`.
        """
        check_module(g_ema, "g_ema")
        _require(g_ema, ("style", "style_dim", "n_latent"), "rosinality's g_ema")

        def mapping(model: nn.Module, z: torch.Tensor) -> torch.Tensor:
            return model.style(z)

        def synthesis(model: nn.Module, ws: torch.Tensor) -> torch.Tensor:
            images, _ = model([ws], input_is_latent=True, randomize_noise=False)
            return images

        dim = int(g_ema.style_dim)
        mapped = cls(g_ema, mapping=mapping, synthesis=synthesis, z_dim=dim, w_dim=dim, num_ws=int(g_ema.n_latent),
                     space=space, truncation_psi=truncation_psi)
        mapped.convention = "rosinality"
        return mapped

    @classmethod
    def lucidrains(cls, model: nn.Module, *, space: LatentSpace = "w+", truncation_psi: float = 1.0,
                   noise_seed: int = 0) -> MappedGenerator:
        """lucidrains/stylegan2-pytorch's ``StyleGAN2`` module (the one holding ``S`` and ``G``).

        Reads ``model.S`` (the ``StyleVectorizer``: ``z (N, latent_dim) -> w``), ``model.G`` (the ``Generator``:
        ``G(styles (N, num_layers, latent_dim), noise (N, image_size, image_size, 1))``), ``model.G.latent_dim``
        (``z_dim = w_dim``), ``model.G.num_layers`` (``num_ws``) and ``model.G.image_size``. The noise image is
        drawn once, uniform in ``[0, 1)`` as that code base draws it, from a CPU generator seeded with
        ``noise_seed``, and is the same for every image. Images are in ``[0, 1]`` and not clamped.

        Raises:
            ValueError: ``model`` lacks one of those attributes, ``noise_seed`` is not an int >= 0, or as
                :class:`MappedGenerator`.
        """
        check_module(model, "model")
        _require(model, ("S", "G"), "lucidrains' StyleGAN2")
        _require(model.G, ("latent_dim", "num_layers", "image_size"), "lucidrains' Generator (model.G)")
        seed = positive_int(noise_seed, "noise_seed", minimum=0)
        size = int(model.G.image_size)
        cache: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

        def noise(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
            if (device, dtype) not in cache:
                drawn = torch.rand((1, size, size, 1), generator=torch.Generator().manual_seed(seed))
                cache[(device, dtype)] = drawn.to(device, dtype)
            return cache[(device, dtype)]

        def mapping(module: nn.Module, z: torch.Tensor) -> torch.Tensor:
            return module.S(z)

        def synthesis(module: nn.Module, ws: torch.Tensor) -> torch.Tensor:
            return module.G(ws, noise(ws.device, ws.dtype).repeat(ws.shape[0], 1, 1, 1))

        dim = int(model.G.latent_dim)
        mapped = cls(model, mapping=mapping, synthesis=synthesis, z_dim=dim, w_dim=dim,
                     num_ws=int(model.G.num_layers), space=space, truncation_psi=truncation_psi)
        mapped.convention = "lucidrains"
        return mapped

    # ------------------------------------------------------------------ the space
    @property
    def latent_shape(self) -> tuple[int, ...]:
        """The shape of one code: ``(z_dim,)``, ``(w_dim,)`` or ``(num_ws, w_dim)``."""
        return space_latent_shape(self.space_record())

    @property
    def w_avg(self) -> torch.Tensor | None:
        """The truncation centre ``(w_dim,)`` (``None`` when none was given and ``truncation_psi`` is 1)."""
        if self._centre_buffer is not None:
            return self.generator.get_buffer(self._centre_buffer)
        return self._w_avg

    def space_record(self) -> dict[str, object]:
        """What an inverter records of its space: ``space``, the sizes, ``truncation_psi``, ``mixing``, ``convention``."""
        return {"space": self.space, "z_dim": self.z_dim, "w_dim": self.w_dim, "num_ws": self.num_ws,
                "truncation_psi": self.truncation_psi, "mixing": self.mixing, "convention": self.convention}

    def extra_repr(self) -> str:
        return (f"space={self.space!r}, latent_shape={self.latent_shape}, truncation_psi={self.truncation_psi}, "
                f"mixing={self.mixing}, convention={self.convention!r}")

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Images for ``codes`` of shape ``(N, *latent_shape)``, in G's own output range.

        Z: mapped, truncated, one ``w`` for every layer; W: one ``w`` for every layer; W+: as given. The codes in
        W and W+ are not truncated here (:meth:`sample` truncates the codes it draws). Differentiable in ``codes``.

        Raises:
            ValueError: ``codes`` is not ``(N, *latent_shape)``.
        """
        if not isinstance(codes, torch.Tensor) or codes.dim() != 1 + len(self.latent_shape) \
                or tuple(codes.shape[1:]) != self.latent_shape:
            raise ValueError(f"codes: expected shape (N, {', '.join(map(str, self.latent_shape))}) for space "
                             f"{self.space!r}, got {_describe(codes)}.")
        if self.space == "z":
            ws = self._map(codes)
        elif self.space == "w":
            ws = codes.unsqueeze(1).repeat(1, self.num_ws, 1)
        else:
            ws = codes
        return self._synthesis(self.generator, ws)

    def sample(self, n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        """Codes of this space, ``(n, *latent_shape)`` float32 on ``device``; a :data:`~discinvert.latents.LatentSampler`.

        ``z ~ N(0, I)`` from ``generator`` (a ``torch.Generator`` on ``device``; torch's global RNG is not used):
        Z returns ``z``; W maps and truncates it; W+ maps and truncates it and, per sample with probability
        ``mixing``, takes the layers from a crossover layer (uniform in ``1 .. num_ws - 1``) on from a second
        mapped ``z``. No gradient; G comes back as it was.
        """
        n = positive_int(n, "n")
        z = torch.randn((n, self.z_dim), generator=generator, device=device)
        if self.space == "z":
            return z
        mix = self.space == "w+" and self.mixing > 0 and self.num_ws > 1
        if mix:
            other = torch.randn((n, self.z_dim), generator=generator, device=device)
            mixed = torch.rand((n,), generator=generator, device=device) < self.mixing
            crossover = torch.randint(1, self.num_ws, (n,), generator=generator, device=device)
            z = torch.cat([z, other])
        with torch.no_grad(), frozen(self.generator):
            ws = self._map(z).to(device, torch.float32)
        if self.space == "w":
            return self._single_w(ws)
        if not mix:
            return ws
        layer = torch.arange(self.num_ws, device=device)
        take_other = mixed[:, None] & (layer[None, :] >= crossover[:, None])
        return torch.where(take_other[..., None], ws[n:], ws[:n])

    def prior(self, n: int = 10_000, seed: int = 0) -> GaussianPrior:
        """The Gaussian prior of this space's codes.

        Z: the standard normal, exactly. W and W+: the mean and covariance (plus a ridge of 1e-3 times the mean
        variance) of ``w`` over ``n`` mapped and truncated ``z`` drawn from a CPU generator seeded with ``seed``;
        in W+ it is the prior of each per-layer code (style mixing leaves each layer's distribution unchanged).
        No gradient; G comes back as it was; torch's global RNG is not used.

        Raises:
            ValueError: ``n < 2``, or the mapping's codes have no variance.
        """
        n = positive_int(n, "n", minimum=2)
        if self.space == "z":
            return GaussianPrior.standard(self.z_dim)
        codes = self._mapped_rows(n, seed).double()
        mean = codes.mean(0)
        centred = codes - mean
        cov = centred.T @ centred / (n - 1)
        ridge = _RIDGE * float(cov.diagonal().mean())
        if not ridge > 0 or not math.isfinite(ridge):
            raise ValueError(f"mapping: expected codes that vary with z, got a covariance of mean variance {ridge / _RIDGE!r}.")
        tril = torch.linalg.cholesky(cov + ridge * torch.eye(self.w_dim, dtype=cov.dtype))
        return GaussianPrior(mean.float(), tril.float())

    # ------------------------------------------------------------------ helpers
    def _map(self, z: torch.Tensor, truncate: bool = True) -> torch.Tensor:
        """``z (N, z_dim)`` -> per-layer codes ``(N, num_ws, w_dim)``, truncated unless ``truncate`` is false."""
        out = self._mapping(self.generator, z)
        if not isinstance(out, torch.Tensor):
            raise ValueError(f"mapping: expected a tensor, got {_describe(out)}.")
        if out.dim() == 2 and tuple(out.shape) == (z.shape[0], self.w_dim):
            out = out.unsqueeze(1).repeat(1, self.num_ws, 1)
        elif out.dim() != 3 or tuple(out.shape) != (z.shape[0], self.num_ws, self.w_dim):
            raise ValueError(f"mapping: expected w of shape ({z.shape[0]}, {self.w_dim}) or ws of shape "
                             f"({z.shape[0]}, {self.num_ws}, {self.w_dim}), got {_describe(out)}.")
        if self.truncation_psi == 1.0 or not truncate:
            return out
        centre = self.w_avg
        assert centre is not None  # set in __init__ whenever truncation_psi != 1
        return centre.to(out.device, out.dtype).lerp(out, self.truncation_psi)

    def _single_w(self, ws: torch.Tensor) -> torch.Tensor:
        """The one ``w`` of per-layer codes that are all the same, ``(N, w_dim)``."""
        if not torch.equal(ws, ws[:, :1].expand_as(ws)):
            raise ValueError("space: 'w' needs a mapping that gives one w per image (or the same w for every layer), "
                             "got per-layer codes that differ; use space='w+'.")
        return ws[:, 0]

    def _mapped_rows(self, n: int, seed: int, truncate: bool = True) -> torch.Tensor:
        """``n`` mapped (and truncated) codes as rows ``(n, w_dim)`` (W+: each layer's code a row if they differ)."""
        device = model_device(self.generator) or torch.device("cpu")
        rng = torch.Generator().manual_seed(positive_int(seed, "seed", minimum=0))
        rows = []
        with torch.no_grad(), frozen(self.generator):
            for start in range(0, n, _CHUNK):
                z = torch.randn((min(_CHUNK, n - start), self.z_dim), generator=rng)
                ws = self._map(z.to(device, model_dtype(self.generator)), truncate).float().cpu()
                if self.space == "w":
                    rows.append(self._single_w(ws))
                else:
                    same = torch.equal(ws, ws[:, :1].expand_as(ws))
                    rows.append(ws[:, 0] if same else ws.reshape(-1, self.w_dim))
        return torch.cat(rows)

    def _mean_w(self) -> torch.Tensor:
        """The mean of ``w`` over 10,000 mapped ``z`` (seed 0), untruncated: the default truncation centre."""
        rows = self._mapped_rows(_CENTRE_SAMPLES, 0, truncate=False)
        device = model_device(self.generator) or torch.device("cpu")
        return rows.mean(0).to(device, model_dtype(self.generator))


def check_space_record(record: object, source: str) -> dict[str, object]:
    """A stored :meth:`MappedGenerator.space_record`, checked strictly: exactly its keys, each of its type and range.

    Raises:
        ValueError: not an object, missing or unknown keys, a bad value; the message starts with ``source``.
    """
    if not isinstance(record, dict):
        raise ValueError(f"{source}: expected an object with the keys {list(_RECORD_KEYS)}, got {_describe(record):.200}.")
    missing, unknown = sorted(set(_RECORD_KEYS) - set(record)), sorted(set(record) - set(_RECORD_KEYS))
    if missing or unknown:
        raise ValueError(f"{source}: missing keys {missing}, unknown keys {unknown}.")
    if record["space"] not in SPACES:
        raise ValueError(f"{source}: expected 'space' one of {SPACES}, got {record['space']!r:.100}.")
    if record["convention"] not in CONVENTIONS:
        raise ValueError(f"{source}: expected 'convention' one of {CONVENTIONS}, got {record['convention']!r:.100}.")
    for key in ("z_dim", "w_dim", "num_ws"):
        value = record[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= _MAX_SIZE:
            raise ValueError(f"{source}: expected {key!r} to be an int from 1 to {_MAX_SIZE}, got {value!r:.100}.")
    for key, low_open in (("truncation_psi", True), ("mixing", False)):
        value = record[key]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value > 0 if low_open else 0 <= value <= 1)
        if not ok:
            expected = "a finite number > 0" if low_open else "a number in [0, 1]"
            raise ValueError(f"{source}: expected {key!r} to be {expected}, got {value!r:.100}.")
    return {**record, "truncation_psi": float(record["truncation_psi"]), "mixing": float(record["mixing"])}


def space_latent_shape(record: Mapping[str, object]) -> tuple[int, ...]:
    """The shape of one code of a (checked) space record: ``(z_dim,)``, ``(w_dim,)`` or ``(num_ws, w_dim)``."""
    z_dim, w_dim, num_ws = (int(record[k]) for k in ("z_dim", "w_dim", "num_ws"))  # type: ignore[call-overload]
    return (z_dim,) if record["space"] == "z" else (w_dim,) if record["space"] == "w" else (num_ws, w_dim)


def prior_dim(record: Mapping[str, object]) -> int:
    """The length of one code vector the space's prior is on: ``z_dim`` in Z, ``w_dim`` in W and W+."""
    return int(record["z_dim"] if record["space"] == "z" else record["w_dim"])  # type: ignore[call-overload]


_MATCHING: Final[tuple[str, ...]] = ("space", "z_dim", "w_dim", "num_ws", "truncation_psi")
"""What a G must share with a recorded space to run an inverter fit for it (``mixing`` and ``convention`` only
say how the fit drew its codes and which code base it read)."""


def check_generator_space(generator: nn.Module, record: Mapping[str, object] | None, source: str) -> None:
    """``generator`` is the kind of G an inverter with the space ``record`` was fit for.

    ``record`` ``None`` (a plain G's inverter) needs a G that is no :class:`MappedGenerator`; a record needs a
    :class:`MappedGenerator` with the same ``space``, ``z_dim``, ``w_dim``, ``num_ws`` and ``truncation_psi``.

    Raises:
        ValueError: naming what the inverter was fit for and what came; the message starts with ``source``.
    """
    if record is None:
        if isinstance(generator, MappedGenerator):
            raise ValueError(f"{source}: fit for a plain generator (codes G(z) takes as they are), got a MappedGenerator "
                             f"in space {generator.space!r}; pass the generator itself, unwrapped.")
        return
    fit_for = ", ".join(f"{k}={record[k]!r}" for k in _MATCHING)
    if not isinstance(generator, MappedGenerator):
        raise ValueError(f"{source}: fit for a MappedGenerator in latent space {record['space']!r} ({fit_for}), got a "
                         f"plain {type(generator).__name__}; wrap it as at fit time, e.g. "
                         f"MappedGenerator.{record['convention'] if record['convention'] != 'custom' else 'nvidia'}"
                         f"(G, space={record['space']!r}).")
    mine = generator.space_record()
    if any(mine[k] != record[k] for k in _MATCHING):
        got = ", ".join(f"{k}={mine[k]!r}" for k in _MATCHING)
        raise ValueError(f"{source}: fit for a MappedGenerator with {fit_for}; got one with {got}.")


def _require(module: nn.Module, names: tuple[str, ...], what: str) -> None:
    missing = [name for name in names if not hasattr(module, name)]
    if missing:
        raise ValueError(f"{what}: expected the attributes {list(names)}, got a {type(module).__name__} without "
                         f"{missing}; build the MappedGenerator with mapping= and synthesis= instead.")


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"{type(value).__name__} {value!r}" if not isinstance(value, nn.Module) else type(value).__name__
