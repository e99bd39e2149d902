"""Inverters as Hugging Face Hub repos: ``config.json`` + ``model.safetensors`` + ``README.md``.

Nothing is ever unpickled: weights come only from safetensors, and a repo holding only
``pytorch_model.bin``/``.pt``/``.pth``/``.ckpt`` files is refused. ``config.json`` is
validated (types, ranges, known keys, format version) and the tensors are checked
against it before anything is loaded; then the fingerprint check of
:meth:`discinvert.Inverter.load` applies.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

from discinvert.config import InverterConfig
from discinvert.serialization import atomic_write, parse_json, read_inverter_file, write_inverter_file

if TYPE_CHECKING:
    import torch
    from torch import nn

    from discinvert.conditioning import Conditioning
    from discinvert.inverter import Inverter

__all__ = [
    "CONFIG_NAME", "MODEL_CARD_NAME", "WEIGHTS_NAME",
    "load_pretrained", "push_to_hub", "read_pretrained", "save_pretrained",
]

logger = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
MODEL_CARD_NAME = "README.md"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def _model_card(config: InverterConfig, *, gan: str | None, metrics: dict[str, Any] | None, repo_id: str | None) -> str:
    name = repo_id or "path/to/this/directory"
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
        "An inverse mapping (image → latent code) for a pretrained GAN, from the features of its",
        f"discriminator's layer `{config.feature_layer}` ({config.feature_dim} values) through a connection",
        f"network {list(config.cn.hidden)} to latents of shape {tuple(config.latent_shape)}, for images of",
        f"shape {tuple(config.image_shape)}.",
        "",
        f"**GAN it belongs to**: {gan or 'see the fingerprints in config.json'}.",
        f"Generator fingerprint `{config.generator_fingerprint}`; discriminator (up to the feature layer)",
        f"fingerprint `{config.discriminator_fingerprint}`. Loading it for another GAN raises an error.",
        "",
        "## Use",
        "",
        "```python",
        "from discinvert import Inverter",
        f'inverter = Inverter.from_pretrained("{name}", generator=G, discriminator=D)',
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
    return "\n".join(lines)


def save_pretrained(
    inverter: Inverter,
    directory: str | os.PathLike[str],
    *,
    gan: str | None = None,
    metrics: dict[str, Any] | None = None,
    repo_id: str | None = None,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` and a ``README.md`` model card.

    Args:
        inverter: what to save.
        directory: created if missing; files in it are replaced atomically.
        gan: a line naming the GAN the inverter belongs to (for the model card).
        metrics: reconstruction metrics to show on the model card.
        repo_id: the Hub name, for the card's loading snippet.
        dtype: storage dtype of the weights (float32 default, or float16/bfloat16).
    """
    import torch

    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    write_inverter_file(target / WEIGHTS_NAME, inverter.state_dict(), inverter.config, dtype=dtype or torch.float32)
    config_text = json.dumps(inverter.config.to_dict(), indent=2, sort_keys=True) + "\n"
    atomic_write(target / CONFIG_NAME, lambda tmp: Path(tmp).write_text(config_text))
    card = _model_card(inverter.config, gan=gan, metrics=metrics, repo_id=repo_id)
    atomic_write(target / MODEL_CARD_NAME, lambda tmp: Path(tmp).write_text(card))
    logger.info("saved inverter to %s", target)
    return target


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


def load_pretrained(
    repo_id_or_directory: str | os.PathLike[str],
    *,
    generator: nn.Module,
    discriminator: nn.Module,
    conditioning: Conditioning | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    on_mismatch: Literal["raise", "warn"] = "raise",
) -> Inverter:
    """Load an inverter from a Hub repo id or a local directory; see :meth:`Inverter.from_pretrained`."""
    from discinvert.inverter import Inverter

    state, config, source = read_pretrained(repo_id_or_directory, revision=revision, cache_dir=cache_dir,
                                            local_files_only=local_files_only, token=token)
    return Inverter.from_state(state, config, generator=generator, discriminator=discriminator,
                               conditioning=conditioning, on_mismatch=on_mismatch, source=source)


def push_to_hub(
    inverter: Inverter,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str | None = None,
    gan: str | None = None,
    metrics: dict[str, Any] | None = None,
) -> str:
    """Create (if needed) the Hub repo and upload ``save_pretrained``'s files; returns the commit URL."""
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    folder = tempfile.mkdtemp(prefix="discinvert-push-")
    try:
        save_pretrained(inverter, folder, gan=gan, metrics=metrics, repo_id=repo_id)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, repo_type="model",
                                 commit_message=commit_message or "Upload discinvert inverter")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return str(info)
