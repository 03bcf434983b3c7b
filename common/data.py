"""MNIST, byte-exact: find the four official IDX files, download them if asked, check them, load them.

Pure NumPy and the standard library: the NumPy scripts import this, so it must never import torch.

    images, labels = load_mnist("train")   # (60000, 28, 28) float32 in [0, 1], (60000,) int64

Where the files are looked for, in order: ``root`` (the scripts' ``--data-dir``), the environment variable
MNIST_DIR, then ./data. In each place both a flat folder and torchvision's ``MNIST/raw/`` layout are
accepted, each file gzipped or not. Every file is checked by its IDX header and by the md5 of its
decompressed payload; any failure raises :class:`DataError` with a one-line message.

Missing files are downloaded by :func:`download` (temp file, check, rename; also used for the original
report's files): from MNIST_MIRROR (an http(s):// or file:// URL, or a local folder; default the S3 mirror
below), giving up after MNIST_TIMEOUT seconds without data (default 30).
"""

import gzip
import hashlib
import http.client
import math
import os
import socket
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

import numpy as np

from common.errors import DataError

DEFAULT_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
DEFAULT_TIMEOUT = 30.0  # seconds without data before a download is abandoned
TRAIN_SIZE = 60_000

IMAGES_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# md5 of each *decompressed* file (header included), as published with the dataset.
MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


def load_mnist(split, root=None, download=True):
    """Return ``(images, labels)`` for ``split`` "train" (60,000) or "test" (10,000).

    images: float32, shape (N, 28, 28), C-contiguous, values in [0, 1].
    labels: int64, shape (N,), values 0-9.
    """
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    images_name, labels_name = FILES[split]
    images_path = find_or_download(images_name, root, download)
    labels_path = find_or_download(labels_name, root, download)
    images, images_md5 = read_idx(images_path, images_name)
    labels, labels_md5 = read_idx(labels_path, labels_name)
    check_pair(images, labels, images_path, labels_path)
    # Structure first, checksum last: the message then says *what* is wrong when it can.
    check_md5(images_md5, images_name, images_path)
    check_md5(labels_md5, labels_name, labels_path)
    return images.astype(np.float32) * np.float32(1 / 255), labels.astype(np.int64)


def search_dirs(root=None):
    """The folders to look in, in order of preference; the first one is where downloads go."""
    dirs = []
    if root is not None:
        if Path(root).exists() and not Path(root).is_dir():
            raise DataError(f"--data-dir {root} is not a folder; point it at the folder holding the four MNIST files")
        dirs.append(Path(root))
    env = os.environ.get("MNIST_DIR")
    if env:
        if not Path(env).is_dir():
            raise DataError(f"MNIST_DIR={env} is not a folder; point it at the folder holding the four "
                            f"MNIST files, or unset it")
        dirs.append(Path(env))
    dirs.append(Path("data"))
    return dirs


def find_file(name, root=None):
    """The first existing copy of ``name`` (gzipped or not, flat or torchvision layout), or None."""
    for folder in search_dirs(root):
        for sub in (folder, folder / "MNIST" / "raw"):
            for candidate in (sub / (name + ".gz"), sub / name):
                if candidate.is_file():
                    return candidate
    return None


def find_or_download(name, root=None, download=True):
    path = find_file(name, root)
    if path is not None:
        return path
    target = search_dirs(root)[0]
    where = " or ".join(str(d) for d in search_dirs(root))
    if not download:
        raise DataError(f"{name}.gz not found in {where}; put the four MNIST files there "
                        f"or set MNIST_DIR to their folder")
    return download_file(name + ".gz", target)


def download_file(filename, folder):
    """MNIST file ``filename`` from the mirror into ``folder``, md5-checked (see :func:`download`)."""
    name = filename.removesuffix(".gz")
    url = mirror_base("MNIST_MIRROR", DEFAULT_MIRROR, "the four MNIST files") + filename

    def verify(tmp, source):
        _, digest = read_idx(tmp, name, source=source, gzipped=True)
        check_md5(digest, name, source)

    return download(url, Path(folder) / filename, verify,
                    advice=f"put the four MNIST files in {folder} or set MNIST_DIR to their folder",
                    mirror_var="MNIST_MIRROR")


def mirror_base(variable, default, what):
    """The base URL in environment ``variable`` (an http(s):// or file:// URL, or a folder), ending in "/"."""
    value = os.environ.get(variable) or default
    scheme, sep, _ = value.partition("://")
    if sep:
        if scheme.lower() not in ("http", "https", "file"):
            raise DataError(f"{variable}={value} has the unknown URL scheme {scheme!r}; it must be an http://, "
                            f"https:// or file:// URL, or a folder holding {what}")
        return value.rstrip("/") + "/"
    if Path(value).is_dir():
        return Path(value).resolve().as_uri() + "/"
    raise DataError(f"{variable}={value} is neither a URL nor a folder; set it to an http:// or https:// "
                    f"mirror, or to a folder holding {what}, or unset it")


def download_timeout():
    """Seconds without data before a download is abandoned: MNIST_TIMEOUT, a finite number > 0 (default 30)."""
    text = os.environ.get("MNIST_TIMEOUT") or str(DEFAULT_TIMEOUT)
    try:
        timeout = float(text)
    except ValueError:
        raise DataError(f"MNIST_TIMEOUT={text} is not a number of seconds; set it to a number of seconds "
                        f"greater than 0 (default {DEFAULT_TIMEOUT:g}), or unset it") from None
    if not (math.isfinite(timeout) and timeout > 0):
        raise DataError(f"MNIST_TIMEOUT={text} must be a finite number of seconds greater than 0 "
                        f"(default {DEFAULT_TIMEOUT:g}); set it to one, or unset it")
    return timeout


def download(url, path, verify, advice, mirror_var):
    """Download ``url`` to ``path`` through a temp file beside it, checked by ``verify(tmp, url)`` (which
    raises DataError), then renamed into place.

    An interrupted, truncated or corrupt download leaves nothing behind that could later look valid. Every
    failure is a DataError of one line; ``advice`` says what to do instead ("put the files in ..."),
    ``mirror_var`` names the environment variable that picks another mirror.
    """
    from tqdm import tqdm  # only needed here; keeps `import common.data` light

    timeout = download_timeout()
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as e:
        raise DataError(f"cannot write to {path.parent} to download {path.name} into ({e.strerror}); "
                        f"choose another folder") from None
    try:
        with os.fdopen(fd, "wb") as out:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                expected = response.headers.get("Content-Length")
                expected = int(expected) if expected else None
                with tqdm(total=expected, unit="B", unit_scale=True, desc=f"downloading {path.name}",
                          leave=False, disable=None) as bar:
                    received = 0
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
            if expected is not None and received != expected:
                raise DataError(f"download of {url} broke off after {received} of {expected} bytes; "
                                f"run again to retry")
        verify(Path(tmp), url)
        os.replace(tmp, path)
    except urllib.error.HTTPError as e:
        raise DataError(f"could not download {url}: HTTP {e.code} {e.reason}; set {mirror_var} to a "
                        f"working mirror, or {advice}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or type(e).__name__
        if isinstance(reason, FileNotFoundError):  # a file:// mirror (a folder) without that file
            raise DataError(f"could not download {url}: no such file; set {mirror_var} to a folder that "
                            f"holds it, or {advice}") from None
        if isinstance(e, (socket.timeout, TimeoutError)) or isinstance(reason, (socket.timeout, TimeoutError)):
            reason = f"no data for {timeout:g} s"
        elif isinstance(e, http.client.IncompleteRead):
            reason = f"the connection closed after {len(e.partial)} bytes of the file"
        raise DataError(f"could not download {url} ({reason}); if this machine is offline, {advice}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def check_sha256(path, expected, source=None):
    """``path``'s sha256 must be ``expected``; a DataError naming ``source`` (default: the path) if not."""
    source = source or path
    try:
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise DataError(f"cannot read {source}: {e.strerror or e}") from None
    if digest != expected:
        raise DataError(f"{source}: checksum mismatch (sha256 {digest}, expected {expected}); the file is "
                        f"corrupt or not the original — delete it and run again to re-download")


def read_bytes(path, gzipped=None, source=None):
    """The decompressed content of ``path``; gzipped by default if its name ends in .gz."""
    source = source or path
    try:
        if path.suffix == ".gz" if gzipped is None else gzipped:
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except gzip.BadGzipFile:
        raise DataError(f"{source} is not a gzip file; delete it and run again to re-download") from None
    except (EOFError, zlib.error) as e:
        raise DataError(f"{source} is truncated or corrupt ({e}); delete it and run again to "
                        f"re-download") from None
    except PermissionError:
        raise DataError(f"cannot read {source}: permission denied") from None
    except OSError as e:
        raise DataError(f"cannot read {source}: {e.strerror or e}") from None


def parse_idx(buf, expected_magic, source):
    """The uint8 array an IDX buffer holds, after checking its magic number and its size."""
    if len(buf) < 4:
        raise DataError(f"{source}: too short to be an IDX file ({len(buf)} bytes)")
    magic = int.from_bytes(buf[:4], "big")
    if magic != expected_magic:
        raise DataError(f"{source}: wrong IDX magic number {magic} (expected {expected_magic}); "
                        f"this is not the MNIST file of that name")
    ndim = buf[3]
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise DataError(f"{source}: truncated IDX header")
    shape = tuple(int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(buf) - header != expected:
        raise DataError(f"{source}: payload has {len(buf) - header} bytes but the header's shape {shape} "
                        f"needs {expected}; the file is truncated or corrupt — delete it and re-download")
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(shape)


def read_idx(path, name, source=None, gzipped=None):
    """The raw uint8 array of MNIST file ``name`` stored at ``path``, and the md5 of its payload."""
    buf = read_bytes(Path(path), gzipped, source)
    array = parse_idx(buf, IMAGES_MAGIC if "images" in name else LABELS_MAGIC, source or path)
    return array, hashlib.md5(buf).hexdigest()


def check_md5(digest, name, source):
    if digest != MD5[name]:
        raise DataError(f"{source}: checksum mismatch (md5 {digest}, expected {MD5[name]}); the file is "
                        f"corrupt or not the official MNIST — delete it and run again to re-download")


def check_pair(images, labels, images_name, labels_name):
    """Check that an images/labels pair belongs together: shapes, counts, label range."""
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_name}: images of shape {images.shape[1:]}, expected 28x28")
    if labels.ndim != 1:
        raise DataError(f"{labels_name}: labels must be one-dimensional, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_name} holds {len(images)} images but {labels_name} holds {len(labels)} "
                        f"labels; the two files do not belong together")
    if labels.size and labels.max() > 9:
        raise DataError(f"{labels_name}: label {int(labels.max())} out of range 0-9")
    return images, labels


def load_splits(root=None, limit_train=None):
    """``(x_train, y_train, x_test, y_test)``; with ``limit_train``, only the first N training images."""
    x_train, y_train = load_mnist("train", root)
    x_test, y_test = load_mnist("test", root)
    if limit_train is not None:
        x_train, y_train = x_train[:limit_train], y_train[:limit_train]
    return x_train, y_train, x_test, y_test


def load_model_inputs(root=None, limit_train=None, permute_seed=None):
    """``(x_train, y_train, x_test, y_test, test_images)``: what the model sees, and what the figures show.

    With ``permute_seed`` the model's images have their pixels permuted (:func:`permute_pixels`);
    ``test_images`` are always the test images as they are, for the figures.
    """
    x_train, y_train, x_test, y_test = load_splits(root, limit_train)
    test_images = x_test
    if permute_seed is not None:
        x_train, x_test = permute_pixels(x_train, permute_seed), permute_pixels(x_test, permute_seed)
    return x_train, y_train, x_test, y_test, test_images


def permute_pixels(images, seed):
    """The same images with their 784 pixel positions shuffled by one fixed permutation drawn from ``seed``.

    The spatial-structure control (--permute-pixels): an MLP cannot tell permuted from original images, a CNN
    loses the neighbourhoods its 3x3 kernels rely on. Every script draws the same permutation from the same seed.
    images: (N, 28, 28) -> (N, 28, 28), a new array.
    """
    order = np.random.default_rng(seed).permutation(28 * 28)
    return images.reshape(len(images), -1)[:, order].reshape(images.shape)
