"""Fashion-MNIST loading from IDX files (Debian's ``dataset-fashion-mnist``).

The Debian package ``dataset-fashion-mnist`` installs the four original IDX
files under ``/usr/share/datasets/fashion-mnist``::

    train-images-idx3-ubyte.gz   train-labels-idx1-ubyte.gz
    t10k-images-idx3-ubyte.gz    t10k-labels-idx1-ubyte.gz

Uncompressed copies (the same names without ``.gz``) are accepted too, as is
the ``train-images.idx3-ubyte`` spelling used by some mirrors.

Pixel conventions used throughout ``discinvert``:

* on disk / in NumPy: ``uint8`` in ``[0, 255]``, shape ``(N, 28, 28)``;
* model range: ``float32`` in ``[-1, 1]``, shape ``(N, 1, 28, 28)``, via
  ``x / 127.5 - 1`` (:func:`to_model_range`) and its inverse
  (:func:`from_model_range`).

IDX files are read by :func:`discinvert.pixels.read_idx` (also importable from here), and
:func:`from_model_range` rounds as :func:`discinvert.pixels.model_to_uint8` does. Nothing here
downloads anything and nothing is pickled.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final, Literal

import numpy as np
import torch

from discinvert.pixels import model_to_uint8, read_idx

__all__ = [
    "DEFAULT_FASHION_MNIST_ROOT",
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ENV_VAR",
    "FASHION_MNIST_IMAGE_SIZE",
    "fashion_mnist_files",
    "from_model_range",
    "load_fashion_mnist",
    "read_idx",
    "resolve_fashion_mnist_root",
    "to_model_range",
]

logger = logging.getLogger(__name__)

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEFAULT_FASHION_MNIST_ROOT: Final[Path] = Path("/usr/share/datasets/fashion-mnist")

#: Environment variable that, when set and non-empty, replaces
#: :data:`DEFAULT_FASHION_MNIST_ROOT` (an explicit ``root=`` argument wins over both).
FASHION_MNIST_ENV_VAR: Final[str] = "DISCINVERT_FASHION_MNIST"

#: Class names, indexed by label (0..9), as in the original Fashion-MNIST release.
FASHION_MNIST_CLASSES: Final[tuple[str, ...]] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

#: Height and width of a Fashion-MNIST image.
FASHION_MNIST_IMAGE_SIZE: Final[int] = 28

_APT_HINT: Final[str] = "install it with `apt-get install dataset-fashion-mnist`"

_SPLIT_PREFIX: Final[dict[str, str]] = {"train": "train", "test": "t10k"}


def resolve_fashion_mnist_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the Fashion-MNIST folder to use.

    Precedence: the explicit ``root`` argument, then the environment variable
    ``DISCINVERT_FASHION_MNIST`` (if set and non-empty), then
    :data:`DEFAULT_FASHION_MNIST_ROOT`. The folder is not checked here.
    """
    if root is not None:
        return Path(root)
    env = os.environ.get(FASHION_MNIST_ENV_VAR, "")
    if env:
        return Path(env)
    return DEFAULT_FASHION_MNIST_ROOT


def _candidate_names(prefix: str, kind: Literal["images", "labels"]) -> tuple[str, ...]:
    idx = "idx3" if kind == "images" else "idx1"
    stems = (f"{prefix}-{kind}-{idx}-ubyte", f"{prefix}-{kind}.{idx}-ubyte")
    return tuple(name for stem in stems for name in (f"{stem}.gz", stem))


def _find_file(folder: Path, prefix: str, kind: Literal["images", "labels"]) -> Path:
    names = _candidate_names(prefix, kind)
    for name in names:
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST {kind} file not found in {folder}: tried {', '.join(names)}; "
        f"{_APT_HINT} or point ${FASHION_MNIST_ENV_VAR} (or root=) at a folder holding the IDX files"
    )


def fashion_mnist_files(
    split: Literal["train", "test"], *, root: str | os.PathLike[str] | None = None
) -> tuple[Path, Path]:
    """Locate the ``(images, labels)`` IDX files of one split.

    Raises:
        ValueError: ``split`` is not ``"train"`` or ``"test"``.
        FileNotFoundError: the folder or a file is missing; the message names the
            folder and says how to install the Debian package.
    """
    if split not in _SPLIT_PREFIX:
        raise ValueError(f"split: expected 'train' or 'test', received {split!r}")
    folder = resolve_fashion_mnist_root(root)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST folder {folder} does not exist; {_APT_HINT} "
            f"or point ${FASHION_MNIST_ENV_VAR} (or root=) at a folder holding the IDX files"
        )
    prefix = _SPLIT_PREFIX[split]
    return _find_file(folder, prefix, "images"), _find_file(folder, prefix, "labels")


def load_fashion_mnist(
    split: Literal["train", "test"], *, root: str | os.PathLike[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Load one Fashion-MNIST split.

    Args:
        split: ``"train"`` (60,000 images) or ``"test"`` (10,000 images, the
            ``t10k`` files).
        root: Folder holding the IDX files; defaults to ``$DISCINVERT_FASHION_MNIST``
            or :data:`DEFAULT_FASHION_MNIST_ROOT`.

    Returns:
        ``(images, labels)``: ``uint8`` images of shape ``(N, 28, 28)`` in
        ``[0, 255]`` and ``int64`` labels of shape ``(N,)`` in ``[0, 9]``
        (see :data:`FASHION_MNIST_CLASSES`).

    Raises:
        ValueError: bad ``split``; a malformed IDX file (see :func:`read_idx`);
            images not ``uint8`` ``(N, 28, 28)``; labels not ``uint8`` ``(N,)``
            with the same ``N`` and values in ``[0, 9]``.
        FileNotFoundError: folder or files missing (the message says
            ``apt-get install dataset-fashion-mnist``).
    """
    images_path, labels_path = fashion_mnist_files(split, root=root)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    size = FASHION_MNIST_IMAGE_SIZE
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (size, size):
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, {size}, {size}), "
            f"received {images.dtype} {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(
            f"{labels_path}: expected uint8 labels of shape (N,), received {labels.dtype} {labels.shape}"
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: expected {images.shape[0]} labels to match {images_path}, "
            f"received {labels.shape[0]}"
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise ValueError(
            f"{labels_path}: expected labels in [0, {len(FASHION_MNIST_CLASSES) - 1}], "
            f"received max {int(labels.max())}"
        )
    logger.info("loaded Fashion-MNIST %s split: %d images from %s", split, images.shape[0], images_path.parent)
    return images, labels.astype(np.int64)


def to_model_range(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Convert ``uint8`` images to the generator's value range.

    Args:
        images: ``uint8`` array or tensor of shape ``(N, H, W)`` or ``(N, 1, H, W)``
            (``H = W = 28`` for Fashion-MNIST), values in ``[0, 255]``.

    Returns:
        A CPU (or, for a tensor input, same-device) ``float32`` tensor of shape
        ``(N, 1, H, W)`` with values ``x / 127.5 - 1`` in ``[-1, 1]``.

    Raises:
        ValueError: the dtype is not ``uint8`` or the shape is not
            ``(N, H, W)`` / ``(N, 1, H, W)``.
    """
    tensor = torch.from_numpy(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"images: expected a numpy.ndarray or torch.Tensor, received {type(images).__name__}")
    if tensor.dtype != torch.uint8:
        raise ValueError(f"images: expected dtype uint8, received {tensor.dtype}")
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(1)
    elif not (tensor.dim() == 4 and tensor.shape[1] == 1):
        raise ValueError(
            f"images: expected shape (N, H, W) or (N, 1, H, W), received {tuple(tensor.shape)}"
        )
    return tensor.to(torch.float32) / 127.5 - 1.0


def from_model_range(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Convert model-range images back to ``uint8`` (inverse of :func:`to_model_range`).

    Args:
        images: Floating tensor or array of shape ``(N, 1, H, W)`` or ``(N, H, W)``,
            nominally in ``[-1, 1]``; values outside are clamped. Any device.

    Returns:
        A ``uint8`` NumPy array of shape ``(N, H, W)`` with values
        ``round((x + 1) * 127.5)`` clamped to ``[0, 255]``. For every ``uint8``
        ``u``, ``from_model_range(to_model_range(u))`` equals ``u`` exactly.

    Raises:
        ValueError: non-floating dtype, a shape other than ``(N, 1, H, W)`` /
            ``(N, H, W)``, or non-finite values.
    """
    tensor = torch.from_numpy(np.asarray(images)) if isinstance(images, np.ndarray) else images
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"images: expected a torch.Tensor or numpy.ndarray, received {type(images).__name__}")
    if not tensor.is_floating_point():
        raise ValueError(f"images: expected a floating dtype, received {tensor.dtype}")
    if tensor.dim() == 4 and tensor.shape[1] == 1:
        tensor = tensor[:, 0]
    elif tensor.dim() != 3:
        raise ValueError(
            f"images: expected shape (N, 1, H, W) or (N, H, W), received {tuple(tensor.shape)}"
        )
    tensor = tensor.detach().to(device="cpu", dtype=torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError("images: expected finite values, received NaN or infinity")
    # discinvert.pixels.model_to_uint8 over [-1, 1]: (x + 1) / 2 * 255 is (x + 1) * 127.5 to the bit
    # (halving is exact), rounded half to even like torch.round; huge values clip to 255 silently, as in torch
    with np.errstate(over="ignore"):
        return model_to_uint8(tensor, (-1.0, 1.0))
