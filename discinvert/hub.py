"""Inverters as Hugging Face Hub repos: ``config.json`` + ``model.safetensors`` + ``README.md``, and beside them
their GAN's direction sets, ``directions/<name>.safetensors`` (:class:`discinvert.DirectionSet` files).

Nothing is ever unpickled: weights come only from safetensors, and a repo holding only
``pytorch_model.bin``/``.pt``/``.pth``/``.ckpt`` files is refused. ``config.json`` is
validated (types, ranges, known keys, format version) and the tensors are checked
against it before anything is loaded; then the fingerprint check of
:meth:`discinvert.Inverter.load` applies.

:func:`save_pretrained`, :func:`from_pretrained` and :func:`push_to_hub` are written once, here, and
bound on :class:`discinvert.Inverter` as its methods of the same names. This module never imports the
inverter's: it works on the inverter (or, for loading, the class) it is given, typed by
:class:`PretrainedInverter`.

A push is one commit, and a failed push leaves nothing half-made: a repo it created is deleted
again, a repo that existed is never deleted, and :class:`HubPushError` says what is left on the Hub.

Direction sets go up with the inverter (``push_to_hub(..., directions={"sefa": ds})``) or later, into a repo
that holds the inverter already (:func:`push_directions`, bound as :meth:`DirectionSet.push_to_hub`); the model
card lists them. :func:`list_directions` names a repo's sets and :func:`directions_file` fetches one
(:meth:`DirectionSet.from_pretrained` loads it, checked against G). This module never imports
:mod:`discinvert.directions` (which imports the inverter's module): it works on the sets it is given, typed by
:class:`PretrainedDirections`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import numbers
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, Protocol, TypeVar

from discinvert import distributed
from discinvert.inverter_config import InverterConfig
from discinvert.files import atomic_write_many, parse_json
from discinvert.serialization import inverter_file_writer, read_inverter_file

if TYPE_CHECKING:
    import torch
    from huggingface_hub import HfApi
    from torch import nn

    from discinvert.conditioning import Conditioning

__all__ = [
    "CONFIG_NAME", "DIRECTIONS_FOLDER", "MODEL_CARD_NAME", "WEIGHTS_NAME", "HubPushError", "PretrainedDirections",
    "PretrainedInverter", "directions_file", "from_pretrained", "list_directions", "push_directions", "push_to_hub",
    "read_pretrained", "save_pretrained",
]

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MODEL_CARD_NAME = "README.md"
DIRECTIONS_FOLDER = "directions"
"""The repo folder of the direction sets: ``directions/<name>.safetensors``."""
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_SET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_CARD_BEGIN = "<!-- discinvert directions: begin -->"
_CARD_END = "<!-- discinvert directions: end -->"
_CARD_ROW = re.compile(r"^\| `([A-Za-z0-9][A-Za-z0-9_-]*)` \|")

InverterT = TypeVar("InverterT", bound="PretrainedInverter")


class PretrainedInverter(Protocol):
    """What this module uses of an inverter (for typing only; :class:`discinvert.Inverter` is one)."""

    config: InverterConfig

    def state_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(
        cls: type[InverterT],
        state: dict[str, torch.Tensor],
        config: InverterConfig,
        *,
        generator: nn.Module,
        discriminator: nn.Module | None = None,
        conditioning: Conditioning | None = None,
        on_mismatch: Literal["raise", "warn"] = "raise",
        source: str = "inverter",
    ) -> InverterT: ...


class PretrainedDirections(Protocol):
    """What this module uses of a direction set (for typing only; :class:`discinvert.DirectionSet` is one)."""

    names: tuple[str, ...]
    method: str
    space: str
    generator_fingerprint: str

    def save(self, path: str | os.PathLike[str]) -> Path: ...


def _layers(feature_layer: str | tuple[str, ...]) -> str:
    """``layer `main.7``` or ``layers `main.4`, `main.7``` (read concatenated) for the model card."""
    if isinstance(feature_layer, str):
        return f"layer `{feature_layer}`"
    return "layers " + ", ".join(f"`{name}`" for name in feature_layer) + " (concatenated)"


def _card_reads(config: InverterConfig, gan: str) -> list[str]:
    """The model card's lines on what the inverter reads and the fingerprints it checks."""
    if config.pixel_encoder is not None:  # G alone
        return [
            "An inverse mapping (image → latent code) for a pretrained GAN's generator alone (generator only, no",
            f"discriminator): its own pixel network ({config.feature_dim} features) and a connection network",
            f"{list(config.cn.hidden)} to latents of shape {tuple(config.latent_shape)}, for images of shape "
            f"{tuple(config.image_shape)}.",
            "",
            f"**GAN it belongs to**: {gan}.",
            f"Generator fingerprint `{config.generator_fingerprint}`. Loading it for another generator raises an error.",
        ]
    return [
        "An inverse mapping (image → latent code) for a pretrained GAN, from the features of its",
        f"discriminator's {_layers(config.feature_layer)} ({config.feature_dim} values) through a connection",  # type: ignore[arg-type]
        f"network {list(config.cn.hidden)} to latents of shape {tuple(config.latent_shape)}, for images of",
        f"shape {tuple(config.image_shape)}.",
        "",
        f"**GAN it belongs to**: {gan}.",
        f"Generator fingerprint `{config.generator_fingerprint}`; discriminator (up to the feature layer)",
        f"fingerprint `{config.discriminator_fingerprint}`. Loading it for another GAN raises an error.",
    ]


def _check_set_name(name: Any) -> str:
    """A direction set's name in a repo: the file ``directions/<name>.safetensors``."""
    if not isinstance(name, str) or not _SET_NAME.fullmatch(name):
        raise ValueError(f"direction set name: expected 1 to 64 letters, digits, '_' or '-' (not starting with '_' "
                         f"or '-'), such as 'sefa' or 'labels', got {name!r:.80}.")
    return name


def _set_path(name: str) -> str:
    return f"{DIRECTIONS_FOLDER}/{name}.safetensors"


def _check_directions(directions: Any, config: InverterConfig) -> dict[str, PretrainedDirections]:
    """``{set name: set}`` to write beside an inverter: valid names, sets made for the inverter's G."""
    if directions is None:
        return {}
    if not isinstance(directions, Mapping) or not directions:
        raise ValueError(f"directions: expected a non-empty dict of set names to DirectionSets, such as "
                         f"{{'sefa': ds}}, got {type(directions).__name__} {directions!r:.80}.")
    checked = {}
    for name, ds in directions.items():
        _check_set_name(name)
        fingerprint = getattr(ds, "generator_fingerprint", None)
        if not isinstance(fingerprint, str) or not callable(getattr(ds, "save", None)):
            raise ValueError(f"directions[{name!r}]: expected a discinvert.DirectionSet, got {type(ds).__name__}.")
        if fingerprint != config.generator_fingerprint:
            raise ValueError(f"directions[{name!r}]: made for the generator with fingerprint {fingerprint[:19]}..., "
                             f"but the inverter belongs to {str(config.generator_fingerprint)[:19]}...; a repo holds "
                             "only direction sets of its inverter's G.")
        checked[name] = ds
    return checked


def _card_row(name: str, ds: PretrainedDirections) -> str:
    """One model-card table row for the set ``name``."""
    names = [n.replace("|", "\\|").replace("`", "'") for n in ds.names]  # a table cell: no column breaks
    shown = ", ".join(f"`{n}`" for n in names[:12]) + (f", … ({len(names)} in all)" if len(names) > 12 else "")
    return f"| `{name}` | {ds.method} | {ds.space} | {shown} |"


def _card_section(rows: Mapping[str, str], repo_id: str | None) -> list[str]:
    """The model card's section on the direction sets, between markers that :func:`push_directions` rewrites."""
    name = repo_id or "path/to/this/directory"
    first = sorted(rows)[0]
    return [
        _CARD_BEGIN,
        "## Direction sets",
        "",
        f"Named edit directions of this GAN's latent space, in `{DIRECTIONS_FOLDER}/` (one `.safetensors` file per set,",
        "refused for another generator):",
        "",
        "| set | method | space | directions |",
        "|---|---|---|---|",
        *(rows[key] for key in sorted(rows)),
        "",
        "```python",
        "from discinvert import DirectionSet",
        f'directions = DirectionSet.from_pretrained("{name}", name="{first}", generator=G)',
        "edited = directions.edit(inverter.encode(images), directions.names[0], 2.0)",
        "```",
        _CARD_END,
        "",
    ]


def _card_with_sets(card: str, rows: Mapping[str, str], repo_id: str | None) -> str:
    """``card`` with its direction-set section replaced by one listing ``rows`` (added at the end if it has none);
    rows already in the section for other sets are kept."""
    begin, end = card.find(_CARD_BEGIN), card.find(_CARD_END)
    kept: dict[str, str] = {}
    if 0 <= begin < end:
        for line in card[begin:end].splitlines():
            match = _CARD_ROW.match(line)
            if match:
                kept[match.group(1)] = line
        before, after = card[:begin], card[end + len(_CARD_END):].lstrip("\n")
    else:
        before, after = card.rstrip("\n") + "\n\n", ""
    section = "\n".join(_card_section({**kept, **rows}, repo_id))
    return before + section + after


def _model_card(config: InverterConfig, *, gan: str | None, metrics: dict[str, Any] | None, repo_id: str | None,
                directions: Mapping[str, PretrainedDirections] | None = None) -> str:
    name = repo_id or "path/to/this/directory"
    gan_words = gan or "see the fingerprints in config.json"
    call = "generator=G" if config.pixel_encoder is not None else "generator=G, discriminator=D"
    lines = [
        "---",
        "library_name: discinvert",
        "tags:",
        "- gan-inversion",
        "- discinvert",
        "- pytorch",
        "license: mit",
        "---",
        "",
        "# discinvert inverter",
        "",
        *_card_reads(config, gan_words),
        "",
        "## Use",
        "",
        "```python",
        "from discinvert import Inverter",
        f'inverter = Inverter.from_pretrained("{name}", {call})',
        "codes = inverter.encode(images)          # images as G produces them",
        "reconstructions = inverter.reconstruct(images)",
        "```",
        "",
    ]
    if metrics:
        lines += ["## Reconstruction metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in metrics.items()]
        lines.append("")
    fit = config.fit
    if fit:
        lines += [
            "## How it was fit",
            "",
            f"{fit.get('steps')} steps of {fit.get('batch_size')} fresh pairs, lr {fit.get('lr')}, seed {fit.get('seed')};",
            f"best held-out latent MSE {fit.get('best_validation_mse')}.",
            "",
        ]
        real = fit.get("real_images")
        if isinstance(real, dict):
            if config.pixel_encoder is None:
                feature_term = f"D-feature weight {real.get('feature_weight')}"
            elif real.get("perceptual") is None:
                feature_term = "no feature term (no discriminator)"
            else:
                feature_term = f"perceptual term ({real.get('perceptual')} network) weight {real.get('feature_weight')}"
            lines += [
                f"Then the real-image stage: {real.get('real_steps')} updates of {real.get('real_batch_size')} real "
                f"images ({real.get('source')}, {real.get('held_out')} held out), lr {real.get('real_lr')}, "
                f"{feature_term}, prior weight {real.get('prior_weight')}; held-out "
                f"pixel MSE {real.get('start_held_out_pixel_mse')} → {real.get('best_held_out_pixel_mse')}; "
                f"held-out latent MSE of this inverter {real.get('latent_validation_mse')}.",
                "",
            ]
        iterative = fit.get("iterative")
        if isinstance(iterative, dict) and isinstance(iterative.get("steps"), list):
            lines += [
                f"Then {config.iterations} step network(s) of iterative refinement, trained on "
                f"{iterative.get('trained_on')}: {iterative.get('iteration_steps')} updates each, lr "
                f"{iterative.get('iteration_lr')}; `encode` runs all of them (`iterations=0` gives the connection "
                "network's codes). Validation error before → after each step: "
                + "; ".join(f"{s.get('metric')} {s.get('start_error')} → {s.get('best_error')}"
                            for s in iterative["steps"] if isinstance(s, dict)) + ".",
                "",
            ]
    if directions:
        lines += _card_section({name: _card_row(name, ds) for name, ds in directions.items()}, repo_id)
    return "\n".join(lines)


def save_pretrained(
    self: PretrainedInverter,
    directory: str | os.PathLike[str],
    *,
    gan: str | None = None,
    metrics: dict[str, Any] | None = None,
    repo_id: str | None = None,
    dtype: torch.dtype | None = None,
    directions: Mapping[str, PretrainedDirections] | None = None,
) -> Path:
    """Write a Hub-style directory: ``model.safetensors``, ``config.json``, ``README.md`` (model card), and with
    ``directions`` one ``directions/<name>.safetensors`` per direction set.

    All or nothing: the three files are written to temporary files beside them, then moved
    into place together (:func:`discinvert.files.atomic_write_many`). After any failure (a
    full disk or file size limit, a directory where a file should go, a refused argument,
    Ctrl-C) the directory holds exactly what it held before, so a previous inverter there
    still loads, and no temporary file is left. Other files in the directory are never
    touched. Under torchrun only rank 0 writes (other ranks return the path without writing).

    Args:
        directory: created if missing (and removed again, if still empty, when writing fails).
        gan: a line naming the GAN this inverter belongs to (for the model card).
        metrics: reconstruction metrics to show on the card: a dict of metric names
            (strings) to numbers or strings.
        repo_id: the Hub name, for the card's loading snippet.
        dtype: storage dtype of the weights (float32 default; float16 halves the size;
            int8 stores weight matrices as int8 with a float32 scale per output row,
            about a quarter, see :meth:`Inverter.save`).
        directions: ``{set name: DirectionSet}`` of this inverter's G (names of letters, digits, ``_`` and ``-``),
            written with the rest, all or nothing, and listed on the model card (method, space, names). Sets
            already in the directory's ``directions/`` under other names stay, unlisted on the new card.

    Returns:
        The directory.

    Raises:
        ValueError: ``dtype`` is not float32, float16, bfloat16 or int8, or the weights
            overflow it; ``metrics`` is not a dict of names to numbers or strings; ``gan`` or
            ``repo_id`` is not a string; a direction set name that is not a file name, or a set made for another
            G (its fingerprint is not the inverter's). Nothing is written.
        OSError: a file could not be written (the message names it); the directory is as it was.
    """
    import torch

    target = Path(directory)
    if not distributed.is_writer():  # under torchrun only rank 0 writes
        return target
    _check_card_arguments(gan=gan, metrics=metrics, repo_id=repo_id)
    sets = _check_directions(directions, self.config)
    # Everything is prepared (and anything refused) before a file is touched.
    weights = inverter_file_writer(self.state_dict(), self.config, dtype=dtype or torch.float32)
    config_text = json.dumps(self.config.to_dict(), indent=2, sort_keys=True) + "\n"
    card = _model_card(self.config, gan=gan, metrics=metrics, repo_id=repo_id, directions=sets)
    created = not target.exists()
    folder_created = bool(sets) and not (target / DIRECTIONS_FOLDER).exists()
    target.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write_many([
            *((target / _set_path(name), lambda tmp, ds=ds: ds.save(tmp)) for name, ds in sets.items()),
            (target / WEIGHTS_NAME, weights),
            (target / CONFIG_NAME, lambda tmp: Path(tmp).write_text(config_text, encoding="utf-8")),
            (target / MODEL_CARD_NAME, lambda tmp: Path(tmp).write_text(card, encoding="utf-8")),
        ])
    except BaseException:
        with contextlib.suppress(OSError):  # only when empty: the folders this call made, nothing else
            if folder_created:
                (target / DIRECTIONS_FOLDER).rmdir()
            if created:
                target.rmdir()
        raise
    logger.info("saved inverter to %s", target)
    return target


def _check_card_arguments(*, gan: Any, metrics: Any, repo_id: Any) -> None:
    """``ValueError`` for model-card arguments the card cannot show, before anything is written."""
    for name, value in (("gan", gan), ("repo_id", repo_id)):
        if value is not None and not isinstance(value, str):
            raise ValueError(f"{name}: expected a string or None, got {type(value).__name__} {value!r}.")
    if metrics is None:
        return
    if not isinstance(metrics, Mapping):
        raise ValueError(f"metrics: expected a dict of metric names to values, such as {{'psnr': 17.2}}, "
                         f"got {type(metrics).__name__} {metrics!r:.80}.")
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise ValueError(f"metrics: expected metric names as strings, got {type(key).__name__} {key!r:.80}.")
        if not isinstance(value, (numbers.Number, str)):
            raise ValueError(f"metrics[{key!r}]: expected a number or a string, got {type(value).__name__} "
                             f"{value!r:.80}.")


def _has_pickles(files: list[str]) -> bool:
    return any(f.endswith(_PICKLE_SUFFIXES) for f in files)


def _refuse_pickles(files: list[str], source: str) -> NoReturn:
    """Raise for a place without ``model.safetensors``, saying why pickle-based weights are not an option."""
    pickles = sorted(f for f in files if f.endswith(_PICKLE_SUFFIXES))
    if not pickles:
        raise ValueError(
            f"{source}: no {WEIGHTS_NAME} found; expected the files written by Inverter.save_pretrained "
            f"({WEIGHTS_NAME}, {CONFIG_NAME}, {MODEL_CARD_NAME})."
        )
    raise ValueError(
        f"{source}: no {WEIGHTS_NAME} found; it holds only pickle-based weights ({', '.join(pickles)}). "
        "discinvert loads weights from safetensors only and never unpickles files, which can run "
        f"arbitrary code. Ask the publisher for a {WEIGHTS_NAME} (Inverter.save_pretrained writes one)."
    )


def _local_files(directory: Path) -> tuple[Path, Path]:
    source = str(directory)
    names = sorted(os.listdir(directory))
    if WEIGHTS_NAME not in names:
        _refuse_pickles(names, source)
    if CONFIG_NAME not in names:
        raise ValueError(f"{source}: no {CONFIG_NAME} found; expected a directory written by Inverter.save_pretrained.")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / name).is_file():
            kind = "a directory" if (directory / name).is_dir() else "something that is not a regular file"
            raise ValueError(f"{directory / name}: expected the file written by Inverter.save_pretrained, got {kind}.")
    return directory / CONFIG_NAME, directory / WEIGHTS_NAME


def _hub_files(
    repo_id: str, *, revision: str | None, cache_dir: str | os.PathLike[str] | None, local_files_only: bool, token: str | bool | None
) -> tuple[Path, Path]:
    from huggingface_hub import HfApi, constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")

    def download(filename: str) -> Path:
        return Path(
            hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir,
                            local_files_only=local_files_only, token=token)
        )

    def remote_files() -> list[str]:
        """The repo's file names, only to say why it is refused; ``[]`` when they cannot be listed."""
        try:
            # A fresh HfApi reads the endpoint now (HF_ENDPOINT), unlike the module-level list_repo_files.
            return list(HfApi(token=token).list_repo_files(repo_id, revision=revision, token=token))
        except Exception as error:  # noqa: BLE001 - a failed listing must not hide the refusal itself
            logger.debug("could not list the files of %s: %s", where, error)
            return []

    try:
        try:
            config_path = download(CONFIG_NAME)
        except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: not cached, not a missing file
            raise
        except EntryNotFoundError:
            files = remote_files()
            if WEIGHTS_NAME not in files and _has_pickles(files):
                _refuse_pickles(files, f"Hub repo {where}")
            raise
        try:
            weights_path = download(WEIGHTS_NAME)
        except LocalEntryNotFoundError:
            # Offline: the cached snapshot of this revision shows whether the repo holds pickles instead.
            cached = sorted(os.listdir(config_path.parent))
            if _has_pickles(cached):
                _refuse_pickles(cached, f"Hub repo {where} (cached at {config_path.parent})")
            raise
        except EntryNotFoundError:
            _refuse_pickles(remote_files(), f"Hub repo {where}")
    except RepositoryNotFoundError:
        raise ValueError(
            f"Hub repo {where}: not found at {constants.ENDPOINT} (or private or gated without a token). "
            "Check the name, pass token=... (or log in with `hf auth login`), or give a local directory "
            "written by Inverter.save_pretrained."
        ) from None
    except RevisionNotFoundError:
        raise ValueError(
            f"Hub repo {repo_id!r}: no revision {revision!r}; expected a branch, tag or commit hash of that repo."
        ) from None
    except LocalEntryNotFoundError as error:
        cache = f" ({cache_dir})" if cache_dir else f" ({constants.HF_HUB_CACHE})"
        if local_files_only or constants.HF_HUB_OFFLINE:
            switch = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1"
            raise ValueError(
                f"Hub repo {where}: not in the local cache{cache} and downloading is off ({switch}). "
                "Connect and retry without HF_HUB_OFFLINE/local_files_only, download it first with "
                "huggingface_hub.snapshot_download, or pass cache_dir= where it was downloaded."
            ) from None
        raise ValueError(
            f"Hub repo {where}: not in the local cache{cache}, and the Hub at {constants.ENDPOINT} could not "
            f"be reached or did not answer as the Hub does ({error.__cause__ or error}). Check the connection "
            "and HF_ENDPOINT, then retry."
        ) from None
    except EntryNotFoundError:
        raise ValueError(
            f"Hub repo {where}: no {CONFIG_NAME}; expected a repo written by Inverter.save_pretrained/push_to_hub."
        ) from None
    return config_path, weights_path


def read_pretrained(
    repo_id_or_directory: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> tuple[dict[str, torch.Tensor], InverterConfig, str]:
    """Fetch and validate a pretrained inverter's config and weights; returns ``(state, config, source)``."""
    local = Path(repo_id_or_directory)
    if local.is_dir():
        config_path, weights_path = _local_files(local)
        source = str(local)
    else:
        repo_id = str(repo_id_or_directory)
        if repo_id.count("/") > 1 or repo_id.startswith((".", "/")):
            raise ValueError(f"{repo_id!r}: expected an existing local directory or a Hub repo id 'org/name'.")
        config_path, weights_path = _hub_files(repo_id, revision=revision, cache_dir=cache_dir,
                                               local_files_only=local_files_only, token=token)
        source = f"Hub repo {repo_id!r}"
    data = parse_json(config_path.read_bytes(), source=f"{source}/{CONFIG_NAME}")
    config = InverterConfig.from_dict(data, source=f"{source}/{CONFIG_NAME}")
    state, file_config = read_inverter_file(weights_path)
    stored, given = file_config.to_dict(), config.to_dict()
    if stored != given:
        differing = sorted(key for key in given if given[key] != stored.get(key))
        raise ValueError(
            f"{source}: {CONFIG_NAME} and the config stored with {WEIGHTS_NAME} disagree (in {', '.join(differing)}); "
            "the repo was altered or mixes files of two inverters."
        )
    return state, config, source


def from_pretrained(
    cls: type[InverterT],
    repo_id_or_directory: str | os.PathLike[str],
    *,
    generator: nn.Module,
    discriminator: nn.Module | None = None,
    conditioning: Conditioning | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    on_mismatch: Literal["raise", "warn"] = "raise",
) -> InverterT:
    """Load an inverter from a Hub repo (``"org/name"``) or a directory from :meth:`save_pretrained`.

    Downloads through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE`` and
    ``HF_ENDPOINT`` apply). Weights come only from ``model.safetensors``: pickle-only
    repos are refused. ``config.json`` is validated, tensors are checked against it,
    and the GAN fingerprints must match (``on_mismatch="warn"`` to downgrade). ``discriminator`` is
    omitted (``None``) exactly for an inverter fit for G alone.

    Raises:
        ValueError: missing repo, revision or files; offline with nothing cached; a
            pickle-only repo; a tampered or newer config; weights that disagree; a D given for an
            inverter fit for G alone, or none for one reading D's features.
        FingerprintMismatchError: fit for another GAN (``on_mismatch="raise"``).
    """
    state, config, source = read_pretrained(repo_id_or_directory, revision=revision, cache_dir=cache_dir,
                                            local_files_only=local_files_only, token=token)
    return cls.from_state(state, config, generator=generator, discriminator=discriminator,
                          conditioning=conditioning, on_mismatch=on_mismatch, source=source)


PushOutcome = Literal["not-created", "deleted", "left-behind", "unchanged", "unconfirmed"]


class HubPushError(ValueError):
    """:func:`push_to_hub` failed. The message names the repo, what the failure left on the Hub and what to do.

    The Hub client's own error is chained (``__cause__``).

    Attributes:
        repo_id: the repo pushed to.
        outcome: what is left on the Hub. ``"not-created"``: nothing was created or changed.
            ``"deleted"``: the repo this push created was deleted again, nothing is left.
            ``"left-behind"``: the repo this push created could not be deleted and is still there.
            ``"unchanged"``: the repo existed; its commit was refused or never sent, nothing in it changed.
            ``"unconfirmed"``: a request was sent but not answered; the message says what it may have done.
    """

    def __init__(self, message: str, *, repo_id: str, outcome: PushOutcome) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.outcome = outcome


# Raised before a request leaves the machine (by name, for every HTTP stack huggingface_hub has used).
_NOTHING_SENT = frozenset(
    {"ConnectError", "ConnectTimeout", "PoolTimeout", "OfflineModeIsEnabled", "HFValidationError"}
)


def _request_url(error: BaseException) -> str | None:
    """The URL of the request that ``error`` is about, or None where it does not say."""
    for holder in (error, getattr(error, "response", None)):
        try:
            request = getattr(holder, "request", None)
        except RuntimeError:  # httpx: "The .request property has not been set."
            request = None
        url = getattr(request, "url", None)
        if url is not None:
            return str(url)
    return None


def _may_have_done(error: BaseException, url_part: str) -> bool:
    """Whether the Hub may have carried out the request whose URL holds ``url_part``, despite ``error``.

    No when nothing was sent, when the Hub refused a request with a 4xx answer, or when the request that
    failed was another one (the client sends its requests one after another and stops at the first
    failure; the commit is the last). Yes for a 5xx or a broken connection on that very request, and for
    an error that does not say which request it is about.
    """
    if any(cls.__name__ in _NOTHING_SENT for cls in type(error).__mro__):
        return False
    status = getattr(getattr(error, "response", None), "status_code", None)
    if isinstance(status, int) and status < 500:
        return False
    url = _request_url(error)
    return url is None or url_part in url


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _what_to_fix(error: BaseException, repo_id: str, endpoint: str) -> str:
    """What to do about the client's ``error`` before pushing again (a phrase without the final period)."""
    if any(cls.__name__ == "OfflineModeIsEnabled" for cls in type(error).__mro__):
        return "unset HF_HUB_OFFLINE (it forbids every request to the Hub)"
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in (401, 403):
        owner = repo_id.split("/")[0] if "/" in repo_id else "your account"
        return f"check the token (token=..., $HF_TOKEN or `hf auth login`): it needs write access to {owner!r}"
    if isinstance(status, int):
        return "wait a while" if status == 429 or status >= 500 else "deal with the reason the Hub gave"
    return f"check the connection and the endpoint ({endpoint}; HF_ENDPOINT sets it)"


def _create_repo(api: HfApi, repo_id: str, *, private: bool | None) -> bool:
    """Create the model repo ``repo_id``; True if this call created it, False if it existed already.

    ``create_repo(exist_ok=True)`` answers the same in both cases, so this asks with ``exist_ok=False``
    and reads the Hub's 409 as "exists". As with ``exist_ok=True``, a 401/402/403 (no right to create
    repos there) is no failure when the repo exists.
    """
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_repo(repo_id, private=private, exist_ok=False, repo_type="model")
    except HfHubHTTPError as error:
        status = getattr(error.response, "status_code", None)
        if status == 409:
            return False
        if status not in (401, 402, 403):
            raise
        try:
            api.repo_info(repo_id, repo_type="model")
        except HfHubHTTPError:
            raise error from None
        return False
    return True


def _staging_failed(error: OSError, repo_id: str) -> HubPushError:
    return HubPushError(
        f"Hub repo {repo_id!r}: push failed before anything was sent, its files could not be written to a temporary "
        f"folder ({_describe(error)}); nothing was created or changed on the Hub. Check that the temporary folder is "
        "writable and has space (TMPDIR chooses it), then push again.",
        repo_id=repo_id, outcome="not-created",
    )


def _create_failed(error: Exception, repo_id: str, endpoint: str) -> HubPushError:
    fix = _what_to_fix(error, repo_id, endpoint)
    if _may_have_done(error, "/api/repos/create"):
        return HubPushError(
            f"Hub repo {repo_id!r}: push failed, the request to create the repo was not answered "
            f"({_describe(error)}). If the repo did not exist before, it may exist now, empty: {fix}, then look at "
            f"{endpoint}/{repo_id} and push again (or delete it with `hf repos delete {repo_id}`).",
            repo_id=repo_id, outcome="unconfirmed",
        )
    return HubPushError(
        f"Hub repo {repo_id!r}: push failed ({_describe(error)}); nothing was created or changed on the Hub. "
        f"{fix[0].upper()}{fix[1:]}, then push again.",
        repo_id=repo_id, outcome="not-created",
    )


def _commit(api: Any, repo_id: str, operations: list[Any], message: str, *, created: bool) -> Any:
    """``api.create_commit`` of ``operations`` as one commit; a failure becomes :func:`_upload_failed`'s error."""
    try:
        return api.create_commit(repo_id=repo_id, repo_type="model", operations=operations, commit_message=message)
    except BaseException as error:
        failure = _upload_failed(error, api, repo_id, created=created)
        if failure is None:
            raise
        raise failure from error


def _upload_failed(error: BaseException, api: HfApi, repo_id: str, *, created: bool) -> HubPushError | None:
    """Undo what can be undone after the commit to ``repo_id`` failed; the error to raise, or None on Ctrl-C.

    A repo this push created is deleted (best effort). A repo that existed is left alone: the upload is
    one commit, which the Hub applies whole or not at all.
    """
    page = f"{api.endpoint}/{repo_id}"
    reason = _describe(error)
    fix = _what_to_fix(error, repo_id, api.endpoint)
    unconfirmed = _may_have_done(error, f"/api/models/{repo_id}/commit/")
    interrupted = not isinstance(error, Exception)
    if created:
        try:
            api.delete_repo(repo_id, repo_type="model", missing_ok=True)
        except BaseException as delete_error:  # a second Ctrl-C included
            what = (f"the repo {repo_id!r} created for it was left behind at {page}, empty or holding this whole "
                    "upload (its commit was not confirmed)" if unconfirmed
                    else f"an empty repo {repo_id!r} was left behind at {page}")
            remedy = (f"Delete it with `hf repos delete {repo_id}` (or HfApi().delete_repo({repo_id!r})), "
                      f"or {fix} and push again to fill it.")
            if interrupted or not isinstance(delete_error, Exception):
                # No HubPushError carries this: Ctrl-C goes on as it is (a second one, during the delete, too).
                logger.warning("push to %s interrupted and deleting the repo created for it failed (%s): %s. %s",
                               repo_id, _describe(delete_error), what, remedy)
                if not isinstance(delete_error, Exception):
                    raise
                return None
            return HubPushError(
                f"Hub repo {repo_id!r}: push failed ({reason}), and deleting the repo created for it failed too "
                f"({_describe(delete_error)}): {what}. {remedy}",
                repo_id=repo_id, outcome="left-behind",
            )
        logger.info("push to %s failed (%s): deleted the repo created for it", repo_id, reason)
        if interrupted:
            return None
        return HubPushError(
            f"Hub repo {repo_id!r}: push failed ({reason}); the repo created for it was deleted again; nothing was "
            f"left on the Hub. {fix[0].upper()}{fix[1:]}, then push again.",
            repo_id=repo_id, outcome="deleted",
        )
    if unconfirmed:
        what = ("the Hub did not confirm the commit, so the repo holds either its previous files or all of the new "
                "ones, never a mix (the upload is one commit, applied whole or not at all)")
        then = f"look at {page}/commits/main and push again if the new files are not there"
        if interrupted:
            logger.warning("push to %s interrupted: %s. Look at %s/commits/main.", repo_id, what, page)
            return None
        return HubPushError(f"Hub repo {repo_id!r} (it existed): push failed ({reason}); {what}. "
                            f"{fix[0].upper()}{fix[1:]}, then {then}.", repo_id=repo_id, outcome="unconfirmed")
    what = "nothing was changed in it: the upload is one commit, and the Hub did not make it"
    if interrupted:
        logger.warning("push to %s interrupted: %s", repo_id, what)
        return None
    return HubPushError(f"Hub repo {repo_id!r} (it existed): push failed ({reason}); {what}. "
                        f"{fix[0].upper()}{fix[1:]}, then push again.", repo_id=repo_id, outcome="unchanged")


def push_to_hub(
    self: PretrainedInverter,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    gan: str | None = None,
    metrics: dict[str, Any] | None = None,
    dtype: torch.dtype | None = None,
    directions: Mapping[str, PretrainedDirections] | None = None,
) -> str:
    """Upload :meth:`save_pretrained`'s files to the Hub repo ``repo_id`` (created if needed).

    ``gan``, ``metrics``, ``dtype`` (the weights' storage: float32 by default, float16,
    bfloat16 or int8) and ``directions`` (``{set name: DirectionSet}`` of this inverter's G, uploaded as
    ``directions/<name>.safetensors`` and listed on the model card) are passed to :meth:`save_pretrained`.
    A set added later goes up with :func:`push_directions` (:meth:`DirectionSet.push_to_hub`).

    The files go up in one commit, which the Hub applies whole or not at all. When it
    fails or is interrupted (Ctrl-C), a repo this call created is deleted again and a
    repo that existed is left as it was (``docs/hub.md``). Under torchrun only rank 0
    uploads.

    Returns:
        The URL of the commit ("" on ranks other than 0 under torchrun).

    Raises:
        discinvert.hub.HubPushError: (a ``ValueError``) the staging folder, the connection
            or the Hub failed, with the underlying error chained; the message names the
            repo, what was left on the Hub (also in ``outcome``) and what to do.
        KeyboardInterrupt: re-raised, after deleting a repo this call created (and
            logging what is left).
    """
    if not distributed.is_writer():  # under torchrun only rank 0 uploads
        return ""
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(token=token)
    try:
        folder = tempfile.mkdtemp(prefix="discinvert-push-")
    except OSError as error:
        raise _staging_failed(error, repo_id) from error
    try:
        try:  # written before the Hub is asked anything: a local failure leaves no repo behind
            save_pretrained(self, folder, gan=gan, metrics=metrics, repo_id=repo_id, dtype=dtype, directions=directions)
        except OSError as error:
            raise _staging_failed(error, repo_id) from error
        try:
            created = _create_repo(api, repo_id, private=private)
        except Exception as error:
            raise _create_failed(error, repo_id, api.endpoint) from error
        # One create_commit rather than upload_folder: with hf_xet installed, upload_folder streams a folder
        # through a pipeline that may split it into several commits, and a failure between two would leave a mix.
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=os.path.join(folder, name))
                      for name in _staged_files(folder)]
        info = _commit(api, repo_id, operations, commit_message or "Upload discinvert inverter", created=created)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return str(info)


def _staged_files(folder: str) -> list[str]:
    """The repo paths of a staged :func:`save_pretrained` folder: its files, and ``directions/``'s, sorted."""
    names = [name for name in os.listdir(folder) if os.path.isfile(os.path.join(folder, name))]
    sets = os.path.join(folder, DIRECTIONS_FOLDER)
    if os.path.isdir(sets):
        names += [f"{DIRECTIONS_FOLDER}/{name}" for name in os.listdir(sets)]
    return sorted(names)


# ----------------------------------------------------------------------------- direction sets beside the inverter
def _repo_id(repo_id_or_directory: str | os.PathLike[str]) -> str:
    repo_id = str(repo_id_or_directory)
    if repo_id.count("/") != 1 or repo_id.startswith((".", "/")) or not all(repo_id.split("/")):
        raise ValueError(f"{repo_id!r}: expected an existing local directory or a Hub repo id 'org/name'.")
    return repo_id


@contextlib.contextmanager
def _looking_up(repo_id: str, *, revision: str | None, cache_dir: str | os.PathLike[str] | None,
                local_files_only: bool) -> Any:
    """The Hub client's errors about a repo, a revision or the cache, as ``ValueError`` s that say what to do."""
    from huggingface_hub import constants
    from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    where = f"{repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        yield
    except RepositoryNotFoundError:
        raise ValueError(f"Hub repo {where}: not found at {constants.ENDPOINT} (or private or gated without a token). "
                         "Check the name, or pass token=...") from None
    except RevisionNotFoundError:
        raise ValueError(f"Hub repo {repo_id!r}: no revision {revision!r}; expected a branch, tag or commit hash of "
                         "that repo.") from None
    except LocalEntryNotFoundError as error:
        cache = f" ({cache_dir})" if cache_dir else f" ({constants.HF_HUB_CACHE})"
        if local_files_only or constants.HF_HUB_OFFLINE:
            switch = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1"
            raise ValueError(f"Hub repo {where}: not in the local cache{cache} and downloading is off ({switch}). "
                             "Connect and retry, or download the repo first with huggingface_hub.snapshot_download."
                             ) from None
        raise ValueError(f"Hub repo {where}: not in the local cache{cache}, and the Hub at {constants.ENDPOINT} could "
                         f"not be reached ({error.__cause__ or error}). Check the connection and HF_ENDPOINT, then "
                         "retry.") from None


def _sets_in(folder: Path) -> list[str]:
    """The set names of a folder's ``directions/*.safetensors`` files, sorted."""
    sets = folder / DIRECTIONS_FOLDER
    if not sets.is_dir():
        return []
    return sorted(p.name[: -len(".safetensors")] for p in sets.iterdir()
                  if p.is_file() and p.name.endswith(".safetensors") and _SET_NAME.fullmatch(p.name[: -len(".safetensors")]))


def list_directions(
    repo_id_or_directory: str | os.PathLike[str],
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> list[str]:
    """The names of the direction sets beside an inverter, sorted: its ``directions/<name>.safetensors`` files.

    Args:
        repo_id_or_directory: a Hub repo id ``"org/name"``, or a directory from :meth:`Inverter.save_pretrained`.
        revision, cache_dir, token: as in :meth:`Inverter.from_pretrained`.
        local_files_only: list what the Hub cache holds of the repo, asking the Hub nothing (so does
            ``HF_HUB_OFFLINE=1``); then only sets downloaded before are listed.

    Raises:
        ValueError: not a directory nor a repo id; a missing repo or revision; offline with nothing of the repo in
            the cache, or the Hub not reachable.
    """
    local = Path(repo_id_or_directory)
    if local.is_dir():
        return _sets_in(local)
    repo_id = _repo_id(repo_id_or_directory)
    from huggingface_hub import HfApi, constants, hf_hub_download

    with _looking_up(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only):
        if local_files_only or constants.HF_HUB_OFFLINE:  # the cached snapshot of the revision: where its config is
            config = hf_hub_download(repo_id, CONFIG_NAME, revision=revision, cache_dir=cache_dir,
                                     local_files_only=True, token=token)
            return _sets_in(Path(config).parent)
        files = HfApi(token=token).list_repo_files(repo_id, revision=revision, token=token)
    prefix = f"{DIRECTIONS_FOLDER}/"
    return sorted(f[len(prefix): -len(".safetensors")] for f in files
                  if f.startswith(prefix) and f.endswith(".safetensors") and _SET_NAME.fullmatch(f[len(prefix): -len(".safetensors")]))


def directions_file(
    repo_id_or_directory: str | os.PathLike[str],
    name: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> tuple[Path, str]:
    """The local path of the direction set ``name`` beside an inverter (downloaded into the Hub cache), and how to
    name it in messages. :meth:`DirectionSet.from_pretrained` reads and checks it.

    Raises:
        ValueError: a bad set name; the repo (or directory) has no set ``name`` (the message lists the sets it
            has); a missing repo or revision; offline without the set in the cache.
    """
    _check_set_name(name)
    local = Path(repo_id_or_directory)
    if local.is_dir():
        path = local / _set_path(name)
        if not path.is_file():
            raise ValueError(f"{local}: no direction set {name!r}; expected one of its sets {_sets_in(local)} "
                             f"({DIRECTIONS_FOLDER}/<name>.safetensors).")
        return path, str(path)
    repo_id = _repo_id(repo_id_or_directory)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    where = f"Hub repo {repo_id!r}" + (f" at revision {revision!r}" if revision else "")
    try:
        with _looking_up(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only):
            path = hf_hub_download(repo_id, _set_path(name), revision=revision, cache_dir=cache_dir,
                                   local_files_only=local_files_only, token=token)
    except EntryNotFoundError as error:
        if isinstance(error, LocalEntryNotFoundError):
            raise
        have = list_directions(repo_id, revision=revision, cache_dir=cache_dir, token=token)
        raise ValueError(f"{where}: no direction set {name!r}; expected one of the sets it has {have}"
                         + ("" if have else " (none: push one with DirectionSet.push_to_hub)") + ".") from None
    except ValueError as error:
        if "not in the local cache" not in str(error):
            raise
        try:  # what the cache does hold of the repo, if anything
            cached = list_directions(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True)
        except ValueError:
            raise error from None
        raise ValueError(f"{where}: direction set {name!r} is not in the local cache{f' ({cache_dir})' if cache_dir else ''} "
                         f"and downloading is off or failed; the cache holds the sets {cached} of this repo.") from None
    return Path(path), f"{where}, direction set {name!r}"


def push_directions(
    self: PretrainedDirections,
    repo_id: str,
    *,
    name: str,
    token: str | None = None,
    commit_message: str | None = None,
) -> str:
    """Upload a direction set into the Hub repo of its G's inverter, as ``directions/<name>.safetensors``.

    The repo must hold an inverter (``config.json``) for the same G: the set's generator fingerprint must be the
    inverter's. The model card (``README.md``) gets the set added to (or replaced in) its list of direction sets.
    The set's file and the card go up in one commit; a set of the same name is replaced. Bound as
    :meth:`DirectionSet.push_to_hub`. Under torchrun only rank 0 uploads.

    Returns:
        The URL of the commit ("" on ranks other than 0 under torchrun).

    Raises:
        ValueError: a bad set name; a set made for another G than the repo's inverter.
        discinvert.hub.HubPushError: (a ``ValueError``) no such repo, or one without an inverter; the connection
            or the Hub failed (nothing is ever deleted: the repo existed; ``outcome`` says what is left).
    """
    if not distributed.is_writer():
        return ""
    _check_set_name(name)
    from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError

    api = HfApi(token=token)
    try:
        folder = tempfile.mkdtemp(prefix="discinvert-push-")
    except OSError as error:
        raise _staging_failed(error, repo_id) from error
    try:
        try:  # the repo's inverter and card, read (into a cache of this call's own) before anything is sent
            config_path = hf_hub_download(repo_id, CONFIG_NAME, token=token, cache_dir=os.path.join(folder, "cache"))
            try:
                card_path: str | None = hf_hub_download(repo_id, MODEL_CARD_NAME, token=token,
                                                        cache_dir=os.path.join(folder, "cache"))
            except EntryNotFoundError as error:
                if isinstance(error, LocalEntryNotFoundError):
                    raise
                card_path = None
        except LocalEntryNotFoundError as error:  # the Hub could not be asked (offline, no connection)
            cause = error.__cause__ or error
            fix = _what_to_fix(cause, repo_id, api.endpoint)
            raise HubPushError(f"Hub repo {repo_id!r}: push failed, the repo's {CONFIG_NAME} could not be read "
                               f"({_describe(cause)}); nothing was created or changed on the Hub. "
                               f"{fix[0].upper()}{fix[1:]}, then push again.", repo_id=repo_id,
                               outcome="not-created") from error
        except (RepositoryNotFoundError, EntryNotFoundError) as error:
            missing = "not found (or private without a token)" if isinstance(error, RepositoryNotFoundError) \
                else f"holds no inverter ({CONFIG_NAME})"
            raise HubPushError(f"Hub repo {repo_id!r}: {missing}; a direction set goes beside its G's inverter. Push "
                               "the inverter first (Inverter.push_to_hub(repo_id, directions={...}) takes the sets "
                               "too); nothing was created or changed on the Hub.", repo_id=repo_id,
                               outcome="not-created") from None
        except Exception as error:
            raise _create_failed(error, repo_id, api.endpoint) from error
        source = f"Hub repo {repo_id!r}/{CONFIG_NAME}"
        config = InverterConfig.from_dict(parse_json(Path(config_path).read_bytes(), source=source), source=source)
        _check_directions({name: self}, config)
        card = Path(card_path).read_text(encoding="utf-8") if card_path else \
            _model_card(config, gan=None, metrics=None, repo_id=repo_id)
        card = _card_with_sets(card, {name: _card_row(name, self)}, repo_id)
        staged = Path(folder) / "staged"
        try:
            (staged / DIRECTIONS_FOLDER).mkdir(parents=True)
            self.save(staged / _set_path(name))
            (staged / MODEL_CARD_NAME).write_text(card, encoding="utf-8")
        except OSError as error:
            raise _staging_failed(error, repo_id) from error
        operations = [CommitOperationAdd(path_in_repo=path, path_or_fileobj=str(staged / path))
                      for path in (MODEL_CARD_NAME, _set_path(name))]
        info = _commit(api, repo_id, operations, commit_message or f"Upload discinvert direction set {name!r}",
                       created=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return str(info)
