"""Named edit directions in a GAN's latent space: found from G alone (SeFa, GANSpace) or learned from labels.

A :class:`DirectionSet` holds ``K`` unit directions of one latent space (Z of a plain G; Z, W or W+ of a
:class:`~discinvert.MappedGenerator`), each with a name and a *scale*: the spread (standard deviation) of the
prior's codes along it. An *amount* of 1 moves a code by one such spread, so amounts mean the same for every
direction. The set remembers G's fingerprint and is refused for another G; it is one ``.safetensors`` file.

* :func:`find_directions` needs only G: ``"sefa"`` (closed-form factorisation of the weight of the layer that
  first takes the code, Shen & Zhou 2021) or ``"pca"`` (principal components of W codes, or of an early
  layer's activations transferred back to Z, Härkönen et al. 2020). Candidates are ranked by how much they
  change G's images.
* :func:`learn_directions` / :func:`learn_directions_from_codes` fit one linear classifier per label on the
  codes of labelled images (the normal of the separating hyperplane, as InterFaceGAN does), report how
  separable each label is on held-out codes, and can hold other named labels fixed (project their normals out).

>>> directions = find_directions(G, latent_shape=(100, 1, 1), method="sefa", k=10)   # doctest: +SKIP
>>> edited = directions.edit(codes, "sefa-0", 2.0)                                    # doctest: +SKIP
>>> directions.save("dcgan.directions.safetensors")                                   # doctest: +SKIP

Everything that runs G does so without grad inside :func:`discinvert.guard.frozen`, so G comes back
bit-identical (modes, ``requires_grad``, weights, buffers), also after an error.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import numbers
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import safetensors
import safetensors.torch
import torch
from torch import nn

from discinvert import hub
from discinvert._version import __version__
from discinvert.argument_checks import is_integer, positive_float, positive_int
from discinvert.edit import apply_direction
from discinvert.files import atomic_write, parse_json
from discinvert.fingerprint import fingerprint_generator
from discinvert.gan import check_module, generate, model_device, probe_generator
from discinvert.guard import frozen
from discinvert.inverter import FingerprintMismatchError, Inverter
from discinvert.latents import parse_latent_shape
from discinvert.mapped import SPACES, GaussianPrior, MappedGenerator
from discinvert.rng import kept
from discinvert.serialization import DIGEST_KEY, tensor_digest

__all__ = ["DirectionRangeWarning", "DirectionSet", "L2_DEFAULT", "METHODS", "find_directions", "learn_directions",
           "learn_directions_from_codes"]

logger = logging.getLogger(__name__)

FORMAT_NAME: Final[str] = "discinvert-directions"
FORMAT_VERSION: Final[int] = 1
METHODS: Final[tuple[str, ...]] = ("sefa", "pca", "labels")
"""How a direction set was made: the two methods of :func:`find_directions`, and ``"labels"``."""
_TENSORS: Final[tuple[str, ...]] = ("directions", "prior_mean", "prior_scale_tril", "scales")
_METADATA: Final[tuple[str, ...]] = ("format", "format_version", "library_version", "names", "method", "space",
                                     "latent_shape", "generator_fingerprint", "info", "typical", DIGEST_KEY)
TYPICAL_MASS: Final[float] = 0.999
"""The prior mass of the typical set: codes whose squared Mahalanobis norm lies in the central 99.9% of the
prior's codes are typical."""
_RANK_BATCH: Final[int] = 8
"""Prior codes each candidate direction is scored on (the first of the seeded prior draw)."""
_CANDIDATES_PER_DIRECTION: Final[int] = 4
_CHUNK: Final[int] = 256
"""Codes per forward pass when reading a layer's activations."""
_IMAGE_CHUNK: Final[int] = 32
"""Codes per forward pass when scoring candidates (whole images: 32 at a time keeps a 1024² G within memory)."""
_LABEL_PRIOR_SAMPLES: Final[int] = 2000
"""Prior codes drawn for the scales and the typical set of label directions."""
L2_DEFAULT: Final[float] = 1.0
"""Default ridge of the label classifiers (``l2`` of :func:`learn_directions_from_codes`), relative to the mean squared
norm of the centred codes, chosen by edit success on held-out train images among ridges from 0.01 to 10,000
(``docs/byo_gan.md``, section 11)."""
_NEWTON_STEPS: Final[int] = 100
_UNIT_TOLERANCE: Final[float] = 1e-4
_SAME: Final[float] = 1e-4
"""A module's input *is* the code when their cosine per code is within this of 1 (a pixel norm may rescale it)."""
_CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class DirectionRangeWarning(UserWarning):
    """An edit moved a code out of the prior's typical set (see :meth:`DirectionSet.edit`): G was trained on
    codes like the prior's, and images of codes far outside it are often broken."""


# ----------------------------------------------------------------------------- the set
@dataclass(frozen=True, eq=False)
class DirectionSet:
    """``K`` named unit directions of one latent space, each with the spread of the prior's codes along it.

    Attributes:
        directions: ``(K, *latent_shape)`` float32 on the CPU, each of unit L2 norm over all its elements.
        names: ``K`` unique names (``"sefa-0"`` .. in rank order, ``"pca-0"`` .., or the label names).
        scales: ``(K,)`` float32, positive: the standard deviation of prior codes projected on each direction;
            an amount of 1 moves a code by one such spread (about 1 in Z).
        method: ``"sefa"``, ``"pca"`` or ``"labels"``.
        space: ``"z"`` (a plain G, or Z of a :class:`~discinvert.MappedGenerator`), ``"w"`` or ``"w+"``.
        latent_shape: the shape of one code.
        generator_fingerprint: :func:`discinvert.fingerprint.fingerprint_generator` of the G it was made for.
        info: JSON-able record: ``"settings"`` (seed, samples, layers, ...) and ``"per_direction"``
            (``{name: {...}}``: the image change used for ranking, eigenvalue or explained variance; for
            labels the held-out balanced accuracy and the counts).
        prior: the Gaussian prior of the space's code vectors (``N(0, I)`` on all elements for a plain G; on each
            row of ``w_dim`` in W and W+), used to measure how typical a code is.
        typical: ``(low, high)``, the squared Mahalanobis norms (under ``prior``, summed over a code's rows) that
            bound the central 99.9% of the prior's codes (:data:`TYPICAL_MASS`), from the seeded prior draw.

    Raises:
        ValueError: inconsistent fields (shapes, non-unit directions, duplicate names, unknown method or space).
    """

    directions: torch.Tensor
    names: tuple[str, ...]
    scales: torch.Tensor
    method: str
    space: str
    latent_shape: tuple[int, ...]
    generator_fingerprint: str
    info: dict[str, object]
    prior: GaussianPrior
    typical: tuple[float, float]

    def __post_init__(self) -> None:
        shape = parse_latent_shape(self.latent_shape)
        object.__setattr__(self, "latent_shape", shape)
        object.__setattr__(self, "names", tuple(self.names))
        _check_fields(self)

    def __len__(self) -> int:
        return len(self.names)

    def __repr__(self) -> str:
        return (f"DirectionSet(method={self.method!r}, space={self.space!r}, latent_shape={self.latent_shape}, "
                f"names={list(self.names)})")

    def _index(self, name: str) -> int:
        if name in self.names:
            return self.names.index(name)
        close = difflib.get_close_matches(str(name), self.names, n=3, cutoff=0.5)
        hint = f" Close matches: {', '.join(map(repr, close))}." if close else ""
        raise ValueError(f"name: expected one of the set's names {list(self.names)[:20]}, got {name!r}.{hint}")

    def vector(self, name: str) -> torch.Tensor:
        """``scale * direction`` of ``name``: a ``latent_shape`` float32 tensor, what
        :func:`discinvert.edit.apply_direction` and :func:`discinvert.edit.edit` take (strength 1 = one spread).

        Raises:
            ValueError: ``name`` is not in the set (the message lists close matches).
        """
        i = self._index(name)
        return self.scales[i] * self.directions[i]

    def as_dict(self) -> dict[str, torch.Tensor]:
        """``{name: vector(name)}`` in the set's order."""
        return {name: self.vector(name) for name in self.names}

    def edit(self, codes: torch.Tensor, name: str, amount: float | torch.Tensor) -> torch.Tensor:
        """``codes + amount * scale * direction`` for the direction ``name``.

        The edited codes are checked against the prior's typical set: a code is typical when its squared
        Mahalanobis norm under :attr:`prior` (in W+ summed over its rows) lies in :attr:`typical`, the central
        99.9% of those of the prior's own codes. A :class:`DirectionRangeWarning` is issued when an edited code
        lies beyond its outer edge (``typical[1]``) and the edit moved it further out; a code already outside that
        the edit brings closer does not warn. The inner edge is not warned about: codes there are nearer the
        prior's mean, where its density is highest and G draws its most average images, and inverted real images
        live there (the bundled DCGAN's real-images inverter gives squared norms of about 13 to 27 against a
        typical 63 to 152), so a warning would fire on every edit of a real image.

        Args:
            codes: ``(N, *latent_shape)`` floating codes (e.g. from :meth:`Inverter.encode`).
            name: one of :attr:`names`.
            amount: a finite number, or ``(N,)`` amounts; in spreads of the prior along the direction.

        Returns:
            ``(N, *latent_shape)`` edited codes, in the codes' dtype and device.

        Raises:
            ValueError: unknown ``name``; ``amount`` not a finite number or ``(N,)`` finite floats; codes rejected
                by :func:`discinvert.edit.apply_direction` (not ``(N, *latent_shape)`` floats).

        Warns:
            DirectionRangeWarning: as above; the message says how many codes and the typical range.
        """
        vector = self.vector(name)
        n = codes.shape[0] if isinstance(codes, torch.Tensor) and codes.dim() else None
        finite_number = isinstance(amount, numbers.Real) and not isinstance(amount, bool) and math.isfinite(amount)
        finite_tensor = isinstance(amount, torch.Tensor) and amount.is_floating_point() and amount.dim() <= 1 \
            and (amount.dim() == 0 or amount.shape[0] == n) and bool(torch.isfinite(amount).all())
        if not (finite_number or finite_tensor):
            raise ValueError(f"amount: expected a finite number or a finite floating tensor of shape ({n},), one per "
                             f"code, got {_describe(amount) if isinstance(amount, torch.Tensor) else repr(amount)}.")
        edited = apply_direction(codes, vector, amount)
        left = self.left_typical(codes, edited)
        after = self.mahalanobis(edited.detach())
        low, high = self.typical
        if bool(left.any()):
            warnings.warn(
                f"{int(left.sum())} of {len(left)} codes edited along {name!r} left the prior's typical set (squared "
                f"Mahalanobis norm {float(after[left].min()):.4g}..{float(after[left].max()):.4g}, typical "
                f"{low:.4g}..{high:.4g}); G's images there may be broken. Use a smaller amount.",
                DirectionRangeWarning, stacklevel=2)
        return edited

    def left_typical(self, codes: torch.Tensor, edited: torch.Tensor) -> torch.Tensor:
        """``(N,)`` bool: which edits :meth:`edit` warns about, those whose edited code lies beyond the typical
        set's outer edge and further out than the code was (``codes``, ``edited``: ``(N, *latent_shape)``)."""
        before, after = self.mahalanobis(codes), self.mahalanobis(edited)
        return (after > self.typical[1]) & (after > before)

    def mahalanobis(self, codes: torch.Tensor) -> torch.Tensor:
        """Squared Mahalanobis norms of ``(N, *latent_shape)`` codes under :attr:`prior` (summed over the rows of
        ``prior.dim``), ``(N,)`` float64 on the CPU."""
        flat = codes.detach().to("cpu", torch.float64).reshape(codes.shape[0], -1, self.prior.dim)
        return _mahalanobis(self.prior, flat)

    # ------------------------------------------------------------------ file
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the set to one ``.safetensors`` file (atomically).

        Tensors: ``directions``, ``scales``, ``prior_mean``, ``prior_scale_tril``. Metadata: ``format``
        (``"discinvert-directions"``), ``format_version`` (1), ``library_version``, ``names``, ``latent_shape``,
        ``info`` and ``typical`` (JSON), ``method``, ``space``, ``generator_fingerprint`` and ``tensor_digest``
        (:func:`discinvert.serialization.tensor_digest` of the tensors).

        Raises:
            ValueError: ``info`` is not JSON-able.
            OSError: see :func:`discinvert.files.atomic_write`.
        """
        tensors = {"directions": self.directions.contiguous(), "scales": self.scales.contiguous(),
                   **{f"prior_{k}": v for k, v in self.prior.tensors().items()}}
        try:
            info = json.dumps(self.info, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as error:
            raise ValueError(f"info: expected a JSON-able dict, got one that is not ({error}).") from None
        metadata = {
            "format": FORMAT_NAME, "format_version": str(FORMAT_VERSION), "library_version": __version__,
            "names": json.dumps(list(self.names)), "method": self.method, "space": self.space,
            "latent_shape": json.dumps(list(self.latent_shape)), "generator_fingerprint": self.generator_fingerprint,
            "info": info, "typical": json.dumps(list(self.typical)), DIGEST_KEY: tensor_digest(tensors),
        }
        return atomic_write(path, lambda tmp: safetensors.torch.save_file(tensors, tmp, metadata=metadata))

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, generator: nn.Module | None = None) -> DirectionSet:
        """Read a set :meth:`save` wrote, strictly.

        Args:
            path: the ``.safetensors`` file.
            generator: the G to use it with; given, its fingerprint must be the recorded one, and a
                :class:`~discinvert.MappedGenerator` must be in the recorded space (a plain G: space ``"z"``).

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: not a readable safetensors file; another format or a newer version; missing or unknown
                metadata or tensors; a bad shape, value or JSON; tensors that do not match their digest (the
                message names the file and what was expected and found).
            FingerprintMismatchError: (a ``ValueError``) ``generator`` is not the G the set was made for.
        """
        source = str(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{source}: no such direction set file.")
        try:
            with safetensors.safe_open(source, framework="pt") as handle:
                metadata = handle.metadata() or {}
                tensors = {name: handle.get_tensor(name) for name in handle.keys()}
        except (safetensors.SafetensorError, OSError, RuntimeError) as error:
            raise ValueError(f"{source}: not a readable safetensors file ({error}).") from None
        loaded = _from_file(tensors, metadata, source)
        if generator is not None:
            loaded.check_generator(generator, source=source)
        return loaded

    @classmethod
    def from_pretrained(cls, repo_id_or_directory: str | os.PathLike[str], *, name: str, generator: nn.Module,
                        revision: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
                        local_files_only: bool = False, token: str | bool | None = None) -> DirectionSet:
        """Load the direction set ``name`` that lives beside an inverter: ``directions/<name>.safetensors`` of a Hub
        repo (``"org/name"``, through ``huggingface_hub``'s cache; ``HF_HUB_OFFLINE`` applies) or of a
        :meth:`Inverter.save_pretrained` directory. Strict, as :meth:`load` with ``generator``.

        Args:
            repo_id_or_directory: the inverter's repo id or directory.
            name: the set's name (:func:`discinvert.hub.list_directions` lists them).
            generator: the G to use it with: its fingerprint must be the one the set was made for.
            revision, cache_dir, local_files_only, token: as in :meth:`Inverter.from_pretrained`.

        Raises:
            ValueError: no set ``name`` there (the message lists the sets the repo has); a missing repo or
                revision; offline without the set cached; what :meth:`load` raises.
            FingerprintMismatchError: (a ``ValueError``) ``generator`` is not the G the set was made for.
        """
        path, source = hub.directions_file(repo_id_or_directory, name, revision=revision, cache_dir=cache_dir,
                                           local_files_only=local_files_only, token=token)
        try:
            loaded = cls.load(path)
        except ValueError as error:
            raise ValueError(f"{source}: {error}") from None
        loaded.check_generator(generator, source=source)
        return loaded

    push_to_hub = hub.push_directions
    """Upload the set beside its G's inverter on the Hub: :func:`discinvert.hub.push_directions`
    (``ds.push_to_hub("org/name", name="sefa")``)."""

    def check_generator(self, generator: nn.Module, *, source: str = "directions") -> None:
        """Refuse a G other than the one the set was made for.

        Raises:
            FingerprintMismatchError: another G (its weights' fingerprint differs).
            ValueError: a :class:`~discinvert.MappedGenerator` in another space, or a plain G for a W/W+ set.
        """
        check_module(generator, "generator")
        space = generator.space if isinstance(generator, MappedGenerator) else "z"
        if space != self.space:
            raise ValueError(f"{source}: made for latent space {self.space!r}, got a generator in space {space!r}.")
        found = fingerprint_generator(generator)
        if found != self.generator_fingerprint:
            raise FingerprintMismatchError(
                f"{source}: made for the generator with fingerprint {self.generator_fingerprint[:19]}..., got one with "
                f"{found[:19]}...; these directions belong to another G (find or learn them again for this one).")


def _check_fields(ds: DirectionSet) -> None:
    k = len(ds.names)
    if k == 0 or any(not isinstance(n, str) or not n for n in ds.names) or len(set(ds.names)) != k:
        raise ValueError(f"names: expected at least one unique non-empty name, got {list(ds.names)[:20]}.")
    if not isinstance(ds.directions, torch.Tensor) or tuple(ds.directions.shape) != (k, *ds.latent_shape) \
            or ds.directions.dtype != torch.float32:
        raise ValueError(f"directions: expected float32 of shape {(k, *ds.latent_shape)}, got {_describe(ds.directions)}.")
    if not isinstance(ds.scales, torch.Tensor) or tuple(ds.scales.shape) != (k,) or ds.scales.dtype != torch.float32:
        raise ValueError(f"scales: expected float32 of shape ({k},), got {_describe(ds.scales)}.")
    if not bool(torch.isfinite(ds.directions).all()) or not bool(torch.isfinite(ds.scales).all()) \
            or bool((ds.scales <= 0).any()):
        raise ValueError("directions, scales: expected finite directions and positive finite scales.")
    norms = torch.linalg.vector_norm(ds.directions.double().reshape(k, -1), dim=1)
    if bool(((norms - 1).abs() > _UNIT_TOLERANCE).any()):
        raise ValueError(f"directions: expected unit L2 norms, got norms {norms.min().item():.6g}..{norms.max().item():.6g}.")
    if ds.method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {ds.method!r}.")
    if ds.space not in SPACES:
        raise ValueError(f"space: expected one of {SPACES}, got {ds.space!r}.")
    if not isinstance(ds.generator_fingerprint, str) or not ds.generator_fingerprint.startswith("sha256:"):
        raise ValueError(f"generator_fingerprint: expected 'sha256:' and hex digits, got {ds.generator_fingerprint!r:.80}.")
    if not isinstance(ds.info, dict):
        raise ValueError(f"info: expected a dict, got {type(ds.info).__name__}.")
    numel = math.prod(ds.latent_shape)
    if not isinstance(ds.prior, GaussianPrior) or numel % ds.prior.dim:
        got = f"a prior on {ds.prior.dim}" if isinstance(ds.prior, GaussianPrior) else type(ds.prior).__name__
        raise ValueError(f"prior: expected a GaussianPrior on a divisor of the code's {numel} elements, got {got}.")
    low, high = ds.typical if isinstance(ds.typical, tuple) and len(ds.typical) == 2 else (math.nan, math.nan)
    if not all(isinstance(v, numbers.Real) and math.isfinite(v) for v in (low, high)) or not 0 <= low <= high:
        raise ValueError(f"typical: expected (low, high) with 0 <= low <= high, got {ds.typical!r}.")


def _from_file(tensors: dict[str, torch.Tensor], metadata: dict[str, str], source: str) -> DirectionSet:
    if metadata.get("format") != FORMAT_NAME:
        raise ValueError(f"{source}: expected metadata format {FORMAT_NAME!r}, got {metadata.get('format')!r:.80}.")
    if metadata.get("format_version") != str(FORMAT_VERSION):
        raise ValueError(f"{source}: expected format_version {FORMAT_VERSION}, got {metadata.get('format_version')!r:.40}"
                         " (a newer file needs a newer discinvert).")
    missing, unknown = sorted(set(_METADATA) - set(metadata)), sorted(set(metadata) - set(_METADATA))
    if missing or unknown:
        raise ValueError(f"{source}: expected the metadata keys {sorted(_METADATA)}; missing {missing}, unknown {unknown}.")
    missing, unknown = sorted(set(_TENSORS) - set(tensors)), sorted(set(tensors) - set(_TENSORS))
    if missing or unknown:
        raise ValueError(f"{source}: expected the tensors {list(_TENSORS)}; missing {missing}, unknown {unknown}.")
    parsed = {key: parse_json(metadata[key], source=f"{source} ({key})") for key in ("names", "latent_shape", "info", "typical")}
    names, shape, typical = parsed["names"], parsed["latent_shape"], parsed["typical"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{source}: expected 'names' to be a list of strings, got {metadata['names']!r:.80}.")
    if not isinstance(shape, list) or not shape or not all(is_integer(d) and d > 0 for d in shape):
        raise ValueError(f"{source}: expected 'latent_shape' to be a list of positive ints, got {metadata['latent_shape']!r:.80}.")
    if not isinstance(typical, list) or len(typical) != 2 or not all(isinstance(v, (int, float)) for v in typical):
        raise ValueError(f"{source}: expected 'typical' to be [low, high], got {metadata['typical']!r:.80}.")
    expected = {"directions": (len(names), *shape), "scales": (len(names),)}
    for key, want in expected.items():
        if tuple(tensors[key].shape) != want or tensors[key].dtype != torch.float32:
            raise ValueError(f"{source}: tensor {key!r}: expected float32 of shape {want}, got "
                             f"{_describe(tensors[key])}.")
    if tensor_digest(tensors) != metadata[DIGEST_KEY]:
        raise ValueError(f"{source}: the tensors do not match the digest stored with them ({DIGEST_KEY}); the file "
                         "is damaged or altered.")
    try:
        prior = GaussianPrior.from_tensors({k.removeprefix("prior_"): v for k, v in tensors.items() if k.startswith("prior_")})
        return DirectionSet(directions=tensors["directions"], names=tuple(names), scales=tensors["scales"],
                            method=metadata["method"], space=metadata["space"], latent_shape=tuple(shape),
                            generator_fingerprint=metadata["generator_fingerprint"], info=parsed["info"],
                            prior=prior, typical=(float(typical[0]), float(typical[1])))
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


# ----------------------------------------------------------------------------- the prior
def _mahalanobis(prior: GaussianPrior, rows: torch.Tensor) -> torch.Tensor:
    """``(N, R, d)`` float64 codes -> ``(N,)`` squared Mahalanobis norms summed over the rows."""
    centred = rows - prior.mean.to(rows)
    white = torch.linalg.solve_triangular(prior.scale_tril.to(rows), centred.reshape(-1, prior.dim).T, upper=False)
    return white.T.reshape(rows.shape[0], -1).pow(2).sum(1)


def _prior_codes(generator: nn.Module, latent_shape: tuple[int, ...], n: int, seed: int,
                 device: torch.device) -> torch.Tensor:
    """``n`` codes of the space's prior from a generator seeded with ``seed``: ``(n, *latent_shape)`` float32 CPU.
    A plain G: ``N(0, I)``; a MappedGenerator: its own sampler (W+ style-mixed as its fits draw)."""
    rng = torch.Generator(device=device).manual_seed(seed)
    if isinstance(generator, MappedGenerator):
        return generator.sample(n, rng, device).float().cpu()
    return torch.randn((n, *latent_shape), generator=rng, device=device).float().cpu()


def _space_prior(generator: nn.Module, latent_shape: tuple[int, ...], samples: int, seed: int) -> GaussianPrior:
    if isinstance(generator, MappedGenerator):
        return generator.prior(n=max(samples, 2), seed=seed)
    return GaussianPrior.standard(math.prod(latent_shape))


def _typical(prior: GaussianPrior, codes: torch.Tensor) -> tuple[float, float]:
    norms = _mahalanobis(prior, codes.double().reshape(codes.shape[0], -1, prior.dim))
    tail = (1 - TYPICAL_MASS) / 2
    bounds = torch.quantile(norms, torch.tensor([tail, 1 - tail], dtype=norms.dtype))
    return float(bounds[0]), float(bounds[1])


def _scales(directions: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """The standard deviation of ``codes`` projected on each unit direction, ``(K,)`` float32."""
    projections = codes.double().reshape(codes.shape[0], -1) @ directions.double().reshape(directions.shape[0], -1).T
    return projections.std(dim=0).float()


# ----------------------------------------------------------------------------- finding directions
def _check_settings(generator: nn.Module, latent_shape: Sequence[int], method: str, k: int, samples: int,
                    seed: int) -> tuple[tuple[int, ...], str]:
    check_module(generator, "generator")
    shape = parse_latent_shape(latent_shape)
    if isinstance(generator, MappedGenerator) and shape != generator.latent_shape:
        raise ValueError(f"latent_shape: expected the MappedGenerator's {generator.latent_shape} (space "
                         f"{generator.space!r}), got {shape}.")
    if method not in ("sefa", "pca"):
        raise ValueError(f"method: expected 'sefa' or 'pca' (label directions: learn_directions), got {method!r}.")
    positive_int(k, "k")
    positive_int(samples, "samples", minimum=_RANK_BATCH)
    positive_int(seed, "seed", minimum=0)
    return shape, generator.space if isinstance(generator, MappedGenerator) else "z"


def find_directions(generator: nn.Module, *, latent_shape: tuple[int, ...], method: str = "sefa", k: int = 10,
                    layer: str | Sequence[str] | None = None, samples: int = 2000, seed: int = 0) -> DirectionSet:
    """``k`` directions of G's latent space found from G alone, ranked by how much they change its images.

    ``"sefa"``: the top eigenvectors of ``A Aᵀ``, ``A`` the weight of the layer that first takes the code, as a
    ``(code_dim, rest)`` matrix (``nn.Linear``-like ``(out, in)`` weights: ``Wᵀ``; ``ConvTranspose`` ``(in, out,
    kh, kw)``: ``W.reshape(in, -1)``; ``Conv`` ``(out, in, ...)``: ``W.transpose(0, 1).reshape(in, -1)``; the raw
    ``weight`` parameter, without a layer's runtime gain). That layer is found by running G once on prior codes
    with temporary hooks: the first module with a ``weight`` whose input *is* the code. For a
    :class:`~discinvert.MappedGenerator` in W or W+, every module whose input is one ``w`` row (the per-layer
    style affines) counts, and their matrices are concatenated (as the SeFa paper does for StyleGAN).

    ``"pca"`` (GANSpace): in W and W+, principal components of ``samples`` mapped prior codes (in W+ of single
    ``w`` rows). In Z, where codes are isotropic, principal components of the output of the layer that first takes
    the code (or of ``layer``) over ``samples`` prior codes, carried back to Z by least squares (``z`` regressed
    on the activations' principal coordinates; row ``i`` of the solution, normalised, is direction ``i``).

    A direction of ``w`` in W+ is that ``w`` direction on every row (broadcast), normalised over all rows.
    Candidates (``min(code_dim, 4k)``) are each scored by ``mean |G(c + s·d) − G(c − s·d)|`` over 8 seeded prior
    codes ``c`` (``s`` the direction's scale, i.e. amount 1); the top ``k``, in descending order of that score,
    are kept and named ``"<method>-0"`` .. ``"<method>-<k-1>"``. Each direction's sign is fixed so that its
    largest-magnitude element is positive. Deterministic for a seed.

    Args:
        generator: G, called as ``G(codes)``; a plain G's prior is taken to be ``N(0, I)``.
        latent_shape: the shape of one code (a MappedGenerator's own ``latent_shape``).
        method: ``"sefa"`` or ``"pca"``.
        k: directions to keep.
        layer: SeFa: the module (dotted name as in ``G.named_modules()``) or modules whose weights to factorise,
            instead of the detected ones; PCA in Z: the module whose output to analyse. Not used by PCA in W/W+.
        samples: prior codes drawn (seeded) for the scales, the typical set, the prior of W/W+ and PCA.
        seed: seeds every draw.

    Returns:
        A :class:`DirectionSet` with method ``method``; ``info["settings"]`` records the layers, samples and seed.

    Raises:
        ValueError: bad settings; a latent shape G rejects; an unknown ``layer`` (close matches listed); no layer
            that takes the code (name it with ``layer=``); a named layer whose weight does not take the code;
            ``k`` above the candidates.
    """
    shape, space = _check_settings(generator, latent_shape, method, k, samples, seed)
    device = model_device(generator) or torch.device("cpu")
    with torch.no_grad(), frozen(generator):
        codes = _prior_codes(generator, shape, samples, seed, device)
        with kept(device):  # a latent shape G rejects is a clear error; a G drawing noise leaves the user's RNG
            probe_generator(generator, codes[:2].to(device))
        if method == "sefa":
            candidates, scores, layers = _sefa(generator, shape, codes, layer)
            measure = "eigenvalue"
        elif space == "z":
            candidates, scores, layers = _pca_z(generator, shape, codes, layer, k)
            measure = "explained_variance_ratio"
        else:
            if layer is not None:
                raise ValueError("layer: PCA in W and W+ analyses the codes themselves, expected None, got "
                                 f"{layer!r} (layer= names the module for SeFa, or for PCA in Z).")
            candidates, scores, layers = _pca_w(codes, shape)
            measure = "explained_variance_ratio"
        count = min(len(candidates), _CANDIDATES_PER_DIRECTION * k)
        if k > len(candidates):
            raise ValueError(f"k: expected at most {len(candidates)} (the candidates {method} gives here), got {k}.")
        candidates, scores = candidates[:count], scores[:count]
        scales = _scales(candidates, codes)
        change = _image_change(generator, candidates, scales, codes[:_RANK_BATCH].to(device))
    order = torch.argsort(change, descending=True, stable=True)[:k]
    prior = _space_prior(generator, shape, samples, seed)
    names = tuple(f"{method}-{i}" for i in range(k))
    per = {name: {"component": int(j), measure: float(scores[j]), "image_change": float(change[j])}
           for name, j in zip(names, order.tolist())}
    info: dict[str, object] = {"settings": {"seed": seed, "samples": samples, "layers": layers, "k": k,
                                            "candidates": count, "rank_batch": _RANK_BATCH},
                               "per_direction": per}
    logger.info("found %d %s directions in %s (layers %s)", k, method, space, layers)
    return DirectionSet(directions=candidates[order].contiguous(), names=names, scales=scales[order].contiguous(),
                        method=method, space=space, latent_shape=shape, generator_fingerprint=fingerprint_generator(generator),
                        info=info, prior=prior, typical=_typical(prior, codes))


def _fix_signs(vectors: torch.Tensor) -> torch.Tensor:
    """Rows with their largest-magnitude element positive (the first such element on ties)."""
    flat = vectors.reshape(vectors.shape[0], -1)
    pick = flat.abs().argmax(dim=1)
    signs = torch.sign(flat[torch.arange(flat.shape[0]), pick])
    signs[signs == 0] = 1
    return vectors * signs.reshape(-1, *([1] * (vectors.dim() - 1)))


def _broadcast(rows: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``(C, d)`` unit vectors -> ``(C, *shape)`` unit directions: as they are, or (W+) on every row, normalised."""
    if len(shape) == 2 and rows.shape[1] == shape[1]:
        rows = rows[:, None, :].expand(-1, shape[0], -1) / math.sqrt(shape[0])
    return rows.reshape(rows.shape[0], *shape).float().contiguous()


@dataclass
class _Taker:
    """A module that took the code (or one ``w`` row) as input when G ran."""

    name: str
    module: nn.Module
    whole: bool


def _takers(generator: nn.Module, codes: torch.Tensor) -> list[_Taker]:
    """The weighted modules whose input is the code (``whole``) or one row of it, in the order they ran."""
    found: list[_Taker] = []
    rows = codes.reshape(codes.shape[0], -1, codes.shape[-1]) if codes.dim() == 3 else codes.reshape(codes.shape[0], 1, -1)
    flat = codes.reshape(codes.shape[0], -1)
    seen: set[int] = set()

    def hook_for(name: str) -> Callable[[nn.Module, tuple[Any, ...]], None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...]) -> None:
            x = next((a for a in inputs if isinstance(a, torch.Tensor)), None)
            if x is None or id(module) in seen or x.shape[0] != flat.shape[0] or not x.is_floating_point():
                return
            per = x.detach().reshape(x.shape[0], -1).to(torch.float64)
            if per.shape[1] == flat.shape[1] and _same(per, flat):
                found.append(_Taker(name, module, True))
                seen.add(id(module))
            elif per.shape[1] == rows.shape[2] and any(_same(per, rows[:, r]) for r in range(rows.shape[1])):
                found.append(_Taker(name, module, False))
                seen.add(id(module))
        return hook

    handles = []
    try:
        for name, module in generator.named_modules():
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
                handles.append(module.register_forward_pre_hook(hook_for(name)))
        generate(generator, codes)
    finally:
        for handle in handles:
            handle.remove()
    return found


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether each row of ``a`` points where the row of ``b`` does (cosine within :data:`_SAME` of 1)."""
    b = b.to(a)
    cosine = (a * b).sum(1) / (torch.linalg.vector_norm(a, dim=1) * torch.linalg.vector_norm(b, dim=1)).clamp(min=1e-300)
    return bool((cosine > 1 - _SAME).all())


def _code_matrix(name: str, module: nn.Module, code_dim: int) -> torch.Tensor:
    """The module's weight as ``(code_dim, rest)`` float64, or ValueError when its input width is not ``code_dim``."""
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor) or weight.dim() < 2:
        raise ValueError(f"layer: expected a module with a weight matrix, got {name!r} ({type(module).__name__}) "
                         "without one.")
    weight = weight.detach().to("cpu", torch.float64)
    if isinstance(module, _CONV_TRANSPOSE):
        matrix = weight.reshape(weight.shape[0], -1)
    elif isinstance(module, _CONV):
        matrix = weight.transpose(0, 1).reshape(weight.shape[1], -1)
    elif weight.dim() == 2:
        matrix = weight.T
    else:
        raise ValueError(f"layer: {name!r} ({type(module).__name__}) has a weight of shape {tuple(weight.shape)}, "
                         "expected a Linear-like (out, in) matrix or a convolution.")
    if matrix.shape[0] != code_dim:
        raise ValueError(f"layer: {name!r} takes inputs of width {matrix.shape[0]}, expected the code's {code_dim} "
                         "(or, in W/W+, one w row's); name the layer that takes the code.")
    return matrix


def _named_modules(generator: nn.Module, layer: str | Sequence[str]) -> list[tuple[str, nn.Module]]:
    names = [layer] if isinstance(layer, str) else list(layer) if isinstance(layer, Sequence) else None
    if not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"layer: expected a module name or a non-empty list of them, got {layer!r}.")
    modules = dict(generator.named_modules())
    out = []
    for name in names:
        if name not in modules or not name:
            close = difflib.get_close_matches(name, [n for n in modules if n], n=5, cutoff=0.5)
            hint = f" Close matches: {', '.join(map(repr, close))}." if close else ""
            raise ValueError(f"layer: {name!r} is not a module of the generator ({type(generator).__name__}).{hint} "
                             "Names are those of G.named_modules().")
        out.append((name, modules[name]))
    return out


def _sefa_modules(generator: nn.Module, shape: tuple[int, ...], codes: torch.Tensor,
                  layer: str | Sequence[str] | None) -> tuple[list[tuple[str, nn.Module]], int]:
    rowwise = isinstance(generator, MappedGenerator) and generator.space in ("w", "w+")
    code_dim = shape[-1] if rowwise else math.prod(shape)
    if layer is not None:
        return _named_modules(generator, layer), code_dim
    takers = _takers(generator, codes)
    if rowwise:
        chosen = [(t.name, t.module) for t in takers if _width(t.module) == code_dim]
    else:
        chosen = [(t.name, t.module) for t in takers if t.whole and _width(t.module) == code_dim][:1]
    if not chosen:
        raise ValueError("layer: found no module with a weight whose input is the code (G may reshape or transform "
                         "it first); name the layer(s) that take it with layer=..., e.g. "
                         "find_directions(G, ..., layer='main.0').")
    return chosen, code_dim


def _width(module: nn.Module) -> int:
    """The input width of a weighted module, as :func:`_code_matrix` reads it (-1 when unreadable)."""
    weight = module.weight
    if isinstance(module, _CONV_TRANSPOSE):
        return int(weight.shape[0])
    if isinstance(module, _CONV) or weight.dim() == 2:
        return int(weight.shape[1])
    return -1


def _sefa(generator: nn.Module, shape: tuple[int, ...], codes: torch.Tensor,
          layer: str | Sequence[str] | None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    device = model_device(generator) or torch.device("cpu")
    modules, code_dim = _sefa_modules(generator, shape, codes[:2].to(device), layer)
    matrix = torch.cat([_code_matrix(name, module, code_dim) for name, module in modules], dim=1)
    values, vectors = torch.linalg.eigh(matrix @ matrix.T)
    values, vectors = values.flip(0), vectors.flip(1).T  # descending; rows are eigenvectors
    return _broadcast(_fix_signs(vectors), shape), values.float(), [name for name, _ in modules]


def _pca(data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Principal axes ``(m, F)`` (rows, descending variance) and variances ``(m,)`` of ``(N, F)`` float64 rows."""
    centred = data - data.mean(0)
    n, f = centred.shape
    if f <= n:
        values, vectors = torch.linalg.eigh(centred.T @ centred / (n - 1))
        return vectors.flip(1).T, values.flip(0).clamp(min=0)
    values, left = torch.linalg.eigh(centred @ centred.T / (n - 1))
    values, left = values.flip(0).clamp(min=0), left.flip(1)
    keep = values > values[0] * 1e-12
    axes = (centred.T @ left[:, keep]).T
    return axes / torch.linalg.vector_norm(axes, dim=1, keepdim=True), values[keep]


def _pca_w(codes: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    rows = codes[:, 0] if len(shape) == 2 else codes  # W+: row 0 is never style-mixed, so it is a mapped w
    axes, variances = _pca(rows.double())
    return _broadcast(_fix_signs(axes), shape), (variances / variances.sum()).float(), []


def _pca_z(generator: nn.Module, shape: tuple[int, ...], codes: torch.Tensor, layer: str | Sequence[str] | None,
           k: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    device = model_device(generator) or torch.device("cpu")
    if layer is None:
        modules, _ = _sefa_modules(generator, shape, codes[:2].to(device), None)
    elif isinstance(layer, str):
        modules = _named_modules(generator, layer)
    else:
        raise ValueError(f"layer: PCA in Z analyses one module's output, expected a name, got {layer!r}.")
    name, module = modules[0]
    activations = torch.cat([_output_of(generator, module, codes[i:i + _CHUNK].to(device))
                             for i in range(0, len(codes), _CHUNK)])
    axes, variances = _pca(activations)
    m = min(len(axes), math.prod(shape), _CANDIDATES_PER_DIRECTION * k)
    coords = (activations - activations.mean(0)) @ axes[:m].T
    z = codes.reshape(len(codes), -1).double()
    solution = torch.linalg.lstsq(coords, z - z.mean(0)).solution  # (m, D): z ≈ coords @ solution
    norms = torch.linalg.vector_norm(solution, dim=1)
    keep = norms > norms.max() * 1e-8
    directions = solution[keep] / norms[keep, None]
    ratio = (variances[:m] / variances.sum())[keep]
    return _fix_signs(directions).reshape(-1, *shape).float().contiguous(), ratio.float(), [name]


def _output_of(generator: nn.Module, module: nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """``module``'s output (first tensor, flattened per code, float64 CPU) when G runs on ``codes``."""
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if not captured:
            tensor = output if isinstance(output, torch.Tensor) else next(
                (o for o in output if isinstance(o, torch.Tensor)), None) if isinstance(output, (tuple, list)) else None
            if tensor is not None:
                captured.append(tensor.detach().reshape(tensor.shape[0], -1).to("cpu", torch.float64))

    handle = module.register_forward_hook(hook)
    try:
        generate(generator, codes)
    finally:
        handle.remove()
    if not captured or captured[0].shape[0] != codes.shape[0]:
        raise ValueError("layer: the named module did not run (or gave no per-code tensor) when G ran; name one "
                         "that does.")
    return captured[0]


def _image_change(generator: nn.Module, directions: torch.Tensor, scales: torch.Tensor,
                  base: torch.Tensor) -> torch.Tensor:
    """``mean |G(c + s d) - G(c - s d)|`` per direction over the codes ``base``, ``(C,)`` float64."""
    steps = (scales.reshape(-1, *([1] * (directions.dim() - 1))) * directions).to(base)
    b = base.shape[0]
    plus = (base[None] + steps[:, None]).reshape(-1, *base.shape[1:])
    minus = (base[None] - steps[:, None]).reshape(-1, *base.shape[1:])
    change = []
    per_chunk = max(1, _IMAGE_CHUNK // b) * b
    for start in range(0, plus.shape[0], per_chunk):
        diff = generate(generator, plus[start:start + per_chunk]) - generate(generator, minus[start:start + per_chunk])
        change.append(diff.detach().abs().reshape(-1, b, diff[0].numel()).to("cpu", torch.float64).mean(dim=(1, 2)))
    return torch.cat(change)


# ----------------------------------------------------------------------------- label directions
def _labels_matrix(labels: object, n: int, names: Sequence[str]) -> tuple[torch.Tensor, str]:
    """``(N, A)`` booleans (one column per name) and the kind, ``"classes"`` or ``"attributes"``."""
    if isinstance(labels, np.ndarray):
        labels = torch.from_numpy(np.ascontiguousarray(labels))
    elif isinstance(labels, (list, tuple)):
        labels = torch.as_tensor(labels)
    if not isinstance(labels, torch.Tensor) or labels.dim() not in (1, 2) or labels.shape[0] != n:
        raise ValueError(f"labels: expected ({n},) class ids or ({n}, A) 0/1 attributes, one row per image/code, got "
                         f"{_describe(labels)}.")
    labels = labels.detach().cpu()
    if labels.dim() == 1:
        if labels.dtype.is_floating_point or labels.dtype == torch.bool:
            raise ValueError(f"labels: expected integer class ids for 1-D labels, got dtype {labels.dtype}.")
        if bool((labels < 0).any()) or bool((labels >= len(names)).any()):
            raise ValueError(f"labels: expected class ids in [0, {len(names)}) (one name per class), got ids "
                             f"{int(labels.min())}..{int(labels.max())}.")
        return labels[:, None] == torch.arange(len(names))[None], "classes"
    if labels.shape[1] != len(names):
        raise ValueError(f"names: expected one name per attribute column ({labels.shape[1]}), got {len(names)}.")
    if not bool(((labels == 0) | (labels == 1)).all()):
        raise ValueError("labels: expected 2-D attributes of 0 and 1 only, got other values.")
    return labels == 1, "attributes"


def _check_names(names: Sequence[str]) -> tuple[str, ...]:
    if isinstance(names, str) or not isinstance(names, Sequence) or not names \
            or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"names: expected a non-empty sequence of unique non-empty strings, got {names!r:.200}.")
    return tuple(names)


def _check_conditions(conditional_on: Mapping[str, Sequence[str]] | None, names: tuple[str, ...]) -> dict[str, list[str]]:
    if conditional_on is None:
        return {}
    if not isinstance(conditional_on, Mapping):
        raise ValueError(f"conditional_on: expected a mapping {{name: [names to hold fixed]}}, got {conditional_on!r:.200}.")
    out = {}
    for key, others in conditional_on.items():
        others = [others] if isinstance(others, str) else list(others)
        unknown = [n for n in [key, *others] if n not in names]
        if unknown or key in others or not others:
            raise ValueError(f"conditional_on: expected names among {list(names)} and a non-empty list of others for "
                             f"each, got {key!r}: {others!r}" + (f" (unknown {unknown})" if unknown else "") + ".")
        out[key] = others
    return out


def _balanced_weights(y: torch.Tensor) -> torch.Tensor:
    pos = float(y.sum())
    return torch.where(y, 0.5 / pos, 0.5 / (len(y) - pos)).double()


def _logistic(x: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, float, torch.Tensor]:
    """L2-regularised, class-balanced logistic regression by Newton's method: ``(w (D,), bias, centre (D,))`` with
    ``P(y) = sigmoid((x - centre) @ w + bias)``.

    Solved in the span of the centred codes (where the ridge's optimum lies), so the Newton system is
    ``min(N, D)`` wide. The ridge is ``l2`` over the mean squared norm of the centred codes.
    """
    centre = x.mean(0)
    centred = x - centre
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    basis = vh[: int((s > s[0] * 1e-10).sum())] if float(s[0]) > 0 else vh[:1]
    features = torch.cat([centred @ basis.T, torch.ones(len(x), 1, dtype=x.dtype)], dim=1)
    c, sign = _balanced_weights(y), torch.where(y, 1.0, -1.0).double()
    ridge = torch.full((features.shape[1],), l2 / max(float(centred.pow(2).sum(1).mean()), 1e-300), dtype=x.dtype)
    ridge[-1] = 0.0

    def loss(theta: torch.Tensor) -> float:
        return float((c * torch.nn.functional.softplus(-sign * (features @ theta))).sum() + 0.5 * (ridge * theta**2).sum())

    theta = torch.zeros(features.shape[1], dtype=x.dtype)
    for _ in range(_NEWTON_STEPS):
        p = torch.sigmoid(-sign * (features @ theta))
        grad = -features.T @ (c * sign * p) + ridge * theta
        hess = features.T @ (features * (c * p * (1 - p))[:, None]) + torch.diag(ridge)
        step = torch.linalg.solve(hess + 1e-12 * torch.eye(len(theta), dtype=x.dtype), grad)
        if float(grad @ step) < 1e-16:  # the Newton decrement: the loss is within 1e-16 of its minimum
            break
        current, t = loss(theta), 1.0
        while loss(theta - t * step) > current and t > 1e-6:
            t /= 2
        theta = theta - t * step
    return basis.T @ theta[:-1], float(theta[-1]), centre


def _split(y: torch.Tensor, holdout: float, rng: torch.Generator) -> torch.Tensor:
    """A held-out mask, stratified: ``round(holdout * n)`` of each side (at least 1, at most n - 1)."""
    mask = torch.zeros(len(y), dtype=torch.bool)
    if holdout == 0:
        return mask
    for side in (True, False):
        idx = torch.nonzero(y == side).flatten()
        take = min(max(1, round(holdout * len(idx))), len(idx) - 1)
        mask[idx[torch.randperm(len(idx), generator=rng)[:take]]] = True
    return mask


def _balanced_accuracy(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, bias: float, centre: torch.Tensor) -> float:
    predicted = ((x - centre) @ w + bias) > 0
    return 0.5 * (float((predicted[y]).double().mean()) + float((~predicted[~y]).double().mean()))


def _project_out(direction: torch.Tensor, others: list[torch.Tensor], name: str) -> torch.Tensor:
    basis: list[torch.Tensor] = []
    for other in others:  # Gram-Schmidt on the normals held fixed
        for b in basis:
            other = other - (other @ b) * b
        norm = torch.linalg.vector_norm(other)
        if float(norm) > 1e-8:
            basis.append(other / norm)
    for b in basis:
        direction = direction - (direction @ b) * b
    norm = torch.linalg.vector_norm(direction)
    if float(norm) < 1e-6:
        raise ValueError(f"conditional_on: {name!r}'s direction lies in the span of the directions held fixed; "
                         "nothing of it is left to edit.")
    return direction / norm


def learn_directions_from_codes(codes: torch.Tensor, labels: torch.Tensor | np.ndarray, *, names: Sequence[str],
                                generator: nn.Module, conditional_on: Mapping[str, Sequence[str]] | None = None,
                                holdout: float = 0.25, seed: int = 0, l2: float = L2_DEFAULT) -> DirectionSet:
    """One direction per class or attribute: the normal of a linear classifier on the flattened codes.

    For each label, an L2-regularised logistic regression with class-balanced weights (Newton's method in torch)
    separates the codes with the label from those without; its weight normal, normalised and pointing to the
    label, is the direction (the hyperplane normal of InterFaceGAN). First it is fitted on a stratified split and
    its balanced accuracy measured on the held-out ``holdout`` fraction of each side (how separable the label is);
    the direction itself is then refit on all codes. ``conditional_on={"shirt": ["t-shirt"]}`` projects the
    (unconditioned) normals of the named others out of ``"shirt"``'s (Gram-Schmidt) and renormalises, so editing
    ``"shirt"`` holds ``"t-shirt"`` fixed to first order.

    Args:
        codes: ``(N, *latent_shape)`` codes, e.g. from :meth:`Inverter.encode`.
        labels: ``(N,)`` integer class ids in ``[0, len(names))`` (one direction per class, one against the rest),
            or ``(N, A)`` 0/1 attributes.
        names: the class names in id order, or the ``A`` attribute names.
        generator: the G the codes belong to (fingerprint, space, prior for the scales and typical set: 2,000
            seeded prior codes).
        conditional_on: ``{name: [names to hold fixed]}``.
        holdout: fraction in ``[0, 1)`` of each side held out to measure the accuracy (0: none measured).
        seed: seeds the split and the prior draw.
        l2: the ridge (> 0), relative to the mean squared norm of the centred codes, so one value suits Z, W and
            W+. Larger pulls each normal toward the class-balanced difference of the class's mean code and the
            others' (its limit); the default was chosen by edit success on held-out train images
            (``docs/byo_gan.md``, section 11), where it matters most with few labelled images.

    Returns:
        A :class:`DirectionSet` with method ``"labels"``; ``info["per_direction"][name]`` holds
        ``holdout_balanced_accuracy`` (``None`` without a held-out part), ``positives``, ``negatives``,
        ``holdout_positives``, ``holdout_negatives``, and for conditional ones ``conditional_on`` and the cosine
        with the unconditioned normal.

    Raises:
        ValueError: codes not ``(N, *latent_shape)`` floats, or of another shape than a MappedGenerator's; labels
            not one per code, of the wrong kind or range; names not one per class/attribute or not unique; a label
            with fewer than 2 codes on either side; bad ``conditional_on``, ``holdout``, ``seed`` or ``l2``.
    """
    check_module(generator, "generator")
    if not isinstance(codes, torch.Tensor) or codes.dim() < 2 or not codes.is_floating_point() \
            or not bool(torch.isfinite(codes).all()):
        raise ValueError(f"codes: expected finite floating codes of shape (N, *latent_shape), got {_describe(codes)}.")
    shape = tuple(codes.shape[1:])
    if isinstance(generator, MappedGenerator) and shape != generator.latent_shape:
        raise ValueError(f"codes: expected shape (N, *{generator.latent_shape}) for the MappedGenerator's space "
                         f"{generator.space!r}, got {tuple(codes.shape)}.")
    names = _check_names(names)
    matrix, kind = _labels_matrix(labels, codes.shape[0], names)
    conditions = _check_conditions(conditional_on, names)
    if not isinstance(holdout, numbers.Real) or isinstance(holdout, bool) or not 0 <= holdout < 1:
        raise ValueError(f"holdout: expected a fraction in [0, 1), got {holdout!r}.")
    positive_int(seed, "seed", minimum=0)
    l2 = positive_float(l2, "l2")
    counts = matrix.sum(0)
    thin = [(n, int(p), len(matrix) - int(p)) for n, p in zip(names, counts.tolist()) if min(p, len(matrix) - p) < 2]
    if thin:
        raise ValueError("labels: expected at least 2 codes with and 2 without each label, got (name, with, without) "
                         f"{thin[:5]}.")
    x = codes.detach().to("cpu", torch.float64).reshape(len(codes), -1)
    rng = torch.Generator().manual_seed(seed)
    normals, per = [], {}
    for name, y in zip(names, matrix.T):
        held = _split(y, float(holdout), rng)
        accuracy = None
        if bool(held.any()):
            w, bias, centre = _logistic(x[~held], y[~held], l2)
            accuracy = _balanced_accuracy(x[held], y[held], w, bias, centre)
        w, _, _ = _logistic(x, y, l2)
        norm = torch.linalg.vector_norm(w)
        if not bool(torch.isfinite(norm)) or float(norm) == 0.0:
            raise ValueError(
                f"labels: the codes with {name!r} and those without it cannot be told apart (the fitted normal is "
                f"{'zero' if bool(torch.isfinite(norm)) else 'not finite'}); expected images (codes) that differ in "
                "this label, not the same ones on both sides.")
        normals.append(w / norm)
        per[name] = {"holdout_balanced_accuracy": accuracy, "positives": int(y.sum()), "negatives": int((~y).sum()),
                     "holdout_positives": int((held & y).sum()), "holdout_negatives": int((held & ~y).sum())}
    final = []
    for name, normal in zip(names, normals):
        if name in conditions:
            conditioned = _project_out(normal, [normals[names.index(o)] for o in conditions[name]], name)
            per[name].update(conditional_on=conditions[name], cosine_with_unconditioned=float(conditioned @ normal))
            normal = conditioned
        final.append(normal)
    directions = torch.stack(final).reshape(len(names), *shape).float().contiguous()
    device = model_device(generator) or torch.device("cpu")
    prior_codes = _prior_codes(generator, shape, _LABEL_PRIOR_SAMPLES, seed, device)
    prior = _space_prior(generator, shape, _LABEL_PRIOR_SAMPLES, seed)
    info: dict[str, object] = {"settings": {"seed": seed, "holdout": float(holdout), "labels": kind, "codes": len(x),
                                            "l2": l2, "prior_samples": _LABEL_PRIOR_SAMPLES,
                                            "final_fit": "all codes (the held-out part measures the accuracy only)"},
                               "per_direction": per}
    return DirectionSet(directions=directions, names=names, scales=_scales(directions, prior_codes), method="labels",
                        space=generator.space if isinstance(generator, MappedGenerator) else "z", latent_shape=shape,
                        generator_fingerprint=fingerprint_generator(generator), info=info, prior=prior,
                        typical=_typical(prior, prior_codes))


def learn_directions(inverter: Inverter, images: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray, *,
                     names: Sequence[str], conditional_on: Mapping[str, Sequence[str]] | None = None,
                     holdout: float = 0.25, seed: int = 0, l2: float = L2_DEFAULT) -> DirectionSet:
    """:func:`learn_directions_from_codes` on ``inverter.encode(images)`` with the inverter's G.

    Args:
        inverter: a fitted, unconditional :class:`~discinvert.Inverter`.
        images: ``(N, *image_shape)`` images in G's value range (what :meth:`Inverter.encode` takes).
        labels, names, conditional_on, holdout, seed, l2: as in :func:`learn_directions_from_codes`.

    Raises:
        ValueError: ``inverter`` is not an unconditional Inverter; ``labels`` not one per image (checked before
            encoding); images rejected by :meth:`Inverter.encode`; what :func:`learn_directions_from_codes` raises.
    """
    if not isinstance(inverter, Inverter):
        raise ValueError(f"inverter: expected a discinvert.Inverter, got {type(inverter).__name__}.")
    if inverter.conditioning is not None:
        raise ValueError("inverter: expected an unconditional inverter; a conditional GAN's codes depend on each "
                         "image's condition, so encode them yourself and call learn_directions_from_codes.")
    positive_float(l2, "l2")  # before encoding
    n = images.shape[0] if isinstance(images, (torch.Tensor, np.ndarray)) and images.ndim >= 1 else None
    rows = labels.shape[0] if isinstance(labels, (torch.Tensor, np.ndarray)) and labels.ndim >= 1 else len(labels)
    if n is not None and rows != n:
        raise ValueError(f"labels: expected one row per image ({n}), got {rows}.")
    codes = inverter.encode(images)
    return learn_directions_from_codes(codes, labels, names=names, generator=inverter.generator,
                                       conditional_on=conditional_on, holdout=holdout, seed=seed, l2=l2)


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
