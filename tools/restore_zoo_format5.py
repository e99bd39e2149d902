"""Re-store the zoo's inverters in format version 5: the same stored tensor bytes, new metadata.

Format version 5 (issue 32) adds a digest of the stored tensors to a file's metadata and the
behavioural fingerprint (``probe``) to its config. Files of older versions load with an
``UnverifiedWeightsWarning``, so every demo and ``--gan zoo:...`` command would warn about the
library's own files. This tool loads each bundled inverter with the bundled GAN (the loader
records the probe from that GAN once the tensor fingerprints match; a format-1 file also gets
its image range and version-2 D fingerprint, as every load of it already computed), and writes
``model.safetensors`` (the tensors exactly as stored before: int8 matrices and their scales
stay int8, no re-quantisation) and ``config.json`` together; the model card is kept. It then
checks that the stored tensors are byte-identical, that the folder loads without a warning, and
that ``encode`` gives bit-identical codes on the bundled test images. The record goes to
``docs/results/zoo_format5.json`` (sha256 of each file before and after), which
``tests/test_docs.py`` uses to tie figures measured on the old files to the shipped ones. A
file's sha256 differs from one run of this tool to the next although its tensors and metadata
are the same: safetensors writes its metadata map in no fixed order.

Run from the repository root:  python -m tools.restore_zoo_format5
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import safetensors
import safetensors.torch
import torch

from discinvert import Inverter, zoo
from discinvert.files import atomic_write_many
from discinvert.hub import CONFIG_NAME, WEIGHTS_NAME
from discinvert.serialization import DIGEST_KEY, FORMAT_NAME, tensor_digest
from discinvert.zoo.datasets import to_model_range

ROOT = Path(__file__).resolve().parents[1]

ENTRY = "dcgan-fashion-mnist"
FOLDERS = ("inverter", "inverter-real-images")
RECORD = ROOT / "docs" / "results" / "zoo_format5.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stored(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safetensors.safe_open(str(path), framework="pt") as handle:
        return {k: handle.get_tensor(k) for k in handle.keys()}, dict(handle.metadata() or {})


def restore(folder: Path, generator: torch.nn.Module, discriminator: torch.nn.Module, images: torch.Tensor) -> dict:
    weights = folder / WEIGHTS_NAME
    before_sha, before_bytes = _sha256(weights), weights.stat().st_size
    tensors, metadata = _stored(weights)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        old = Inverter.from_pretrained(folder, generator=generator, discriminator=discriminator)
        old_codes = old.encode(images)
    data = old.config.to_dict()
    new_metadata = {"format": FORMAT_NAME, "format_version": str(data["format_version"]),
                    "library_version": data["library_version"], "config": json.dumps(data, sort_keys=True),
                    DIGEST_KEY: tensor_digest(tensors)}
    config_text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    atomic_write_many([
        (weights, lambda tmp: safetensors.torch.save_file(tensors, tmp, metadata=new_metadata)),
        (folder / CONFIG_NAME, lambda tmp: Path(tmp).write_text(config_text)),
    ])
    again, _ = _stored(weights)
    identical = sorted(again) == sorted(tensors) and all(
        again[k].dtype == tensors[k].dtype and torch.equal(again[k], tensors[k]) for k in tensors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the re-stored folder must load without any warning
        new = Inverter.from_pretrained(folder, generator=generator, discriminator=discriminator)
    same_codes = torch.equal(new.encode(images), old_codes)
    if not (identical and same_codes and new.config == old.config):
        raise SystemExit(f"{folder}: the re-stored inverter differs (tensors identical: {identical}, "
                         f"codes identical: {same_codes}); nothing should change but the metadata")
    return {"folder": str(folder.relative_to(ROOT)), "format_version_before": int(metadata.get("format_version", 0)),
            "format_version_after": int(data["format_version"]), "sha256_before": before_sha,
            "sha256_after": _sha256(weights), "bytes_before": before_bytes, "bytes_after": weights.stat().st_size,
            "stored_tensors_identical": identical,
            "encode_identical_on_test_images": same_codes, "test_images": int(images.shape[0])}


def main() -> int:
    command = "python -m tools.restore_zoo_format5"
    print(command)
    generator, discriminator, _ = zoo.load(ENTRY)
    images = to_model_range(zoo.load_test_images(ENTRY)[0]).float()
    rows = [restore(zoo.path(ENTRY) / name, generator, discriminator, images) for name in FOLDERS]
    previous = json.loads(RECORD.read_text()) if RECORD.is_file() else {"rows": []}
    # A second run finds format-5 files: keep the first run's "before" hashes, which the figures were measured on.
    earlier = {row["folder"]: row for row in previous["rows"]}
    for row in rows:
        first = earlier.get(row["folder"])
        if first is not None and row["format_version_before"] == 5:
            row.update(sha256_before=first["sha256_before"], bytes_before=first["bytes_before"],
                       format_version_before=first["format_version_before"])
    RECORD.write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")
    for row in rows:
        print(f"{row['folder']}: format {row['format_version_before']} -> {row['format_version_after']}, "
              f"sha256 {row['sha256_before'][:12]}... -> {row['sha256_after'][:12]}..., tensors identical, "
              f"codes identical on {row['test_images']} test images")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
