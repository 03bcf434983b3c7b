"""common/data.py: the real MNIST byte-exact, every malformed input refused, downloads safe."""

import gzip
import subprocess
import sys

import numpy as np
import pytest

from common.data import FILES, load_mnist, load_splits
from common.errors import DataError, UserError
from conftest import ROOT, Server, official_payload, write_idx, write_tiny_split

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TEST_FILES = ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]


# --- the real data -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("split, counts", [("train", TRAIN_COUNTS), ("test", TEST_COUNTS)])
def test_real_splits_have_official_shapes_dtypes_range_and_class_counts(mnist_dir, split, counts):
    images, labels = load_mnist(split, root=mnist_dir, download=False)
    assert images.shape == (sum(counts), 28, 28) and images.dtype == np.float32
    assert images.flags.c_contiguous
    assert labels.shape == (sum(counts),) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert np.bincount(labels, minlength=10).tolist() == counts


def test_real_train_pixels_have_the_well_known_mean_and_std_and_first_labels(mnist_dir):
    images, labels = load_mnist("train", root=mnist_dir, download=False)
    assert abs(images.mean(dtype=np.float64) - 0.1307) < 1e-4
    assert abs(images.std(dtype=np.float64) - 0.3081) < 1e-4
    assert labels[:5].tolist() == [5, 0, 4, 1, 9]


def test_images_are_the_raw_bytes_divided_by_255(mnist_dir):
    images, _ = load_mnist("test", root=mnist_dir, download=False)
    raw = np.frombuffer(official_payload(mnist_dir, "t10k-images-idx3-ubyte"), np.uint8, offset=16)
    np.testing.assert_array_equal(np.rint(images.ravel() * 255).astype(np.uint8), raw)


def test_torchvision_layout_and_uncompressed_files_are_accepted(mnist_dir, isolated):
    raw = isolated / "cache" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(official_payload(mnist_dir, "t10k-images-idx3-ubyte"))
    (raw / "t10k-labels-idx1-ubyte.gz").symlink_to(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    images, labels = load_mnist("test", root=isolated / "cache", download=False)
    assert images.shape == (10000, 28, 28) and labels[:3].tolist() == [7, 2, 1]


def test_search_order_is_root_then_mnist_dir_then_dot_data(mnist_dir, isolated, monkeypatch):
    empty = isolated / "empty"
    empty.mkdir()
    write_tiny_split(isolated / "data")  # ./data holds a wrong (tiny) copy: must not be reached first
    monkeypatch.setenv("MNIST_DIR", str(mnist_dir))
    assert len(load_mnist("test", root=empty, download=False)[1]) == 10000
    monkeypatch.delenv("MNIST_DIR")
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist("test", root=empty, download=False)


def test_limit_train_takes_the_first_n(mnist_dir):
    x_train, y_train, x_test, y_test = load_splits(mnist_dir, limit_train=7)
    assert x_train.shape == (7, 28, 28) and y_train.tolist() == [5, 0, 4, 1, 9, 2, 1]
    assert len(x_test) == 10000


# --- malformed files -----------------------------------------------------------------------------------------

def load_tiny(folder):
    return load_mnist("test", root=folder, download=False)


def test_wrong_magic_is_refused(isolated):
    images, _ = write_tiny_split(isolated)
    write_idx(images, np.zeros((5, 28, 28)), magic=2049)
    with pytest.raises(DataError, match="wrong IDX magic number 2049 .expected 2051"):
        load_tiny(isolated)


def test_truncated_payload_is_refused(isolated):
    images, _ = write_tiny_split(isolated)
    data = gzip.decompress(images.read_bytes())
    images.write_bytes(gzip.compress(data[:-100]))
    with pytest.raises(DataError, match="payload has 3820 bytes but the header's shape"):
        load_tiny(isolated)


def test_payload_longer_than_header_says_is_refused(isolated):
    _, labels = write_tiny_split(isolated)
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes()) + b"\x00\x01"))
    with pytest.raises(DataError, match="payload has 7 bytes but the header's shape .5,. needs 5"):
        load_tiny(isolated)


def test_truncated_gzip_stream_is_refused(isolated):
    images, _ = write_tiny_split(isolated)
    images.write_bytes(images.read_bytes()[:-30])
    with pytest.raises(DataError, match="truncated or corrupt"):
        load_tiny(isolated)


def test_image_and_label_counts_must_agree(isolated):
    write_tiny_split(isolated, n=5)
    write_idx(isolated / "t10k-labels-idx1-ubyte.gz", np.arange(4))
    with pytest.raises(DataError, match="holds 5 images but .* holds 4 labels"):
        load_tiny(isolated)


def test_labels_out_of_range_are_refused(isolated):
    write_tiny_split(isolated, labels=[1, 2, 10, 3, 4])
    with pytest.raises(DataError, match="label 10 out of range 0-9"):
        load_tiny(isolated)


def test_non_gzip_file_named_gz_is_refused(isolated):
    images, _ = write_tiny_split(isolated)
    images.write_bytes(b"<html>not found</html>" * 10)
    with pytest.raises(DataError, match="is not a gzip file"):
        load_tiny(isolated)


def test_checksum_mismatch_names_the_file_and_says_to_redownload(isolated):
    write_tiny_split(isolated)  # well-formed, but not the official payload
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte.gz: checksum mismatch .*delete it"):
        load_tiny(isolated)


def test_one_flipped_byte_in_a_real_file_is_caught(mnist_dir, isolated):
    payload = bytearray(official_payload(mnist_dir, "t10k-images-idx3-ubyte"))
    payload[5000] ^= 1
    (isolated / "t10k-images-idx3-ubyte").write_bytes(bytes(payload))
    (isolated / "t10k-labels-idx1-ubyte.gz").symlink_to(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="checksum mismatch"):
        load_tiny(isolated)


def test_missing_files_without_download_say_where_to_put_them(isolated):
    with pytest.raises(DataError, match="not found in .*set MNIST_DIR"):
        load_mnist("test", download=False)


def test_mnist_dir_that_does_not_exist_is_an_error(isolated, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(isolated / "nowhere"))
    with pytest.raises(DataError, match="MNIST_DIR=.*nowhere is not a folder"):
        load_mnist("test")


def test_offline_download_fails_with_advice(isolated, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", "http://127.0.0.1:9/mnist/")  # discard port: nothing listens
    with pytest.raises(DataError, match="could not download .*offline, put the four MNIST files in data"):
        load_mnist("test")
    assert not any((isolated / "data").iterdir())


def test_data_errors_are_user_errors():
    assert issubclass(DataError, UserError)


# --- downloads from a local mirror ---------------------------------------------------------------------------

def test_download_fetches_verifies_and_keeps_the_files(http_mirror, isolated, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", http_mirror.url)
    images, labels = load_mnist("test")
    assert images.shape == (10000, 28, 28) and labels[:3].tolist() == [7, 2, 1]
    assert sorted(p.name for p in (isolated / "data").iterdir()) == TEST_FILES
    http_mirror.requests.clear()
    load_mnist("test")
    assert http_mirror.requests == []  # the second time it is read from disk


def test_download_goes_to_data_dir_when_given(http_mirror, isolated, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", http_mirror.url)
    load_mnist("test", root=isolated / "mine")
    assert sorted(p.name for p in (isolated / "mine").iterdir()) == TEST_FILES


def test_file_url_mirror_works(mnist_dir, isolated, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", mnist_dir.as_uri())
    assert len(load_mnist("test")[0]) == 10000


def test_corrupted_download_is_refused_and_nothing_left(http_mirror, isolated, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", http_mirror.url)
    body = bytearray(http_mirror.files["t10k-images-idx3-ubyte.gz"])
    payload = bytearray(gzip.decompress(bytes(body)))
    payload[1000] ^= 0xFF
    http_mirror.files["t10k-images-idx3-ubyte.gz"] = gzip.compress(bytes(payload))
    with pytest.raises(DataError, match="checksum mismatch"):
        load_mnist("test")
    assert list((isolated / "data").iterdir()) == []


def test_connection_dropped_mid_file_leaves_nothing(http_mirror, isolated, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", http_mirror.url)
    http_mirror.behaviour["t10k-images-idx3-ubyte.gz"] = "drop"
    with pytest.raises(DataError, match="could not download|broke off"):
        load_mnist("test")
    assert list((isolated / "data").iterdir()) == []


def test_stalled_server_times_out_and_leaves_nothing(http_mirror, isolated, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", http_mirror.url)
    monkeypatch.setenv("MNIST_TIMEOUT", "1")
    http_mirror.behaviour["t10k-images-idx3-ubyte.gz"] = "stall"
    with pytest.raises(DataError, match="no data for 1 s"):
        load_mnist("test")
    assert list((isolated / "data").iterdir()) == []


def test_a_timeout_that_is_not_a_number_is_a_data_error(isolated, monkeypatch):
    monkeypatch.setenv("MNIST_TIMEOUT", "soon")
    with pytest.raises(DataError, match="MNIST_TIMEOUT=soon is not a number of seconds"):
        load_mnist("test")


def test_404_names_the_url(isolated, monkeypatch):
    server = Server({})
    try:
        monkeypatch.setenv("MNIST_MIRROR", server.url)
        with pytest.raises(DataError, match=r"HTTP 404 .*set MNIST_MIRROR"):
            load_mnist("test")
    finally:
        server.close()
    assert list((isolated / "data").iterdir()) == []


# --- framework-free ------------------------------------------------------------------------------------------

def test_importing_common_data_does_not_import_torch():
    code = "import sys, common.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- MNIST_TIMEOUT and MNIST_MIRROR: checked, one line each (issue 14, item 9) -----------------------------------

@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf"])
def test_a_timeout_that_is_not_a_positive_finite_number_is_named(isolated, monkeypatch, value):
    monkeypatch.setenv("MNIST_TIMEOUT", value)
    with pytest.raises(DataError, match=rf"^MNIST_TIMEOUT={value} must be a finite number of seconds greater "
                                        rf"than 0 \(default 30\)"):
        load_mnist("test")
    assert not (isolated / "data").exists() or list((isolated / "data").iterdir()) == []


@pytest.mark.parametrize("value, pattern", [
    ("example.org/mnist", r"MNIST_MIRROR=example.org/mnist is neither a URL nor a folder; set it to an http"),
    ("no-such-folder", r"MNIST_MIRROR=no-such-folder is neither a URL nor a folder"),
    ("ftp://example.org/mnist", r"MNIST_MIRROR=ftp://example.org/mnist has the unknown URL scheme 'ftp'; it must "
                                r"be an http://, https:// or file:// URL, or a folder"),
], ids=["no-scheme", "no-folder", "ftp"])
def test_a_mirror_that_is_neither_url_nor_folder_is_named(isolated, monkeypatch, value, pattern):
    monkeypatch.setenv("MNIST_MIRROR", value)
    with pytest.raises(DataError, match=pattern):
        load_mnist("test")


def test_a_local_folder_works_as_mirror(mnist_dir, isolated, monkeypatch):
    monkeypatch.setenv("MNIST_MIRROR", str(mnist_dir))
    assert len(load_mnist("test")[0]) == 10000
    assert sorted(p.name for p in (isolated / "data").iterdir()) == TEST_FILES


def test_a_folder_mirror_without_the_files_says_so(isolated, monkeypatch):
    (isolated / "empty").mkdir()
    monkeypatch.setenv("MNIST_MIRROR", "empty")
    with pytest.raises(DataError, match=r"could not download file://.*/empty/t10k-images-idx3-ubyte.gz: no such "
                                        r"file; set MNIST_MIRROR to a folder that holds it"):
        load_mnist("test")
    assert list((isolated / "data").iterdir()) == []


@pytest.mark.parametrize("split", ["train", "test"])
def test_torchvision_reads_the_same_mnist(tmp_path, mnist_dir, split):
    """An independent oracle: torchvision's own MNIST reader, given the same files, sees the same images."""
    datasets = pytest.importorskip("torchvision.datasets", reason="torchvision is the test extra's oracle")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in FILES["train"] + FILES["test"]:   # torchvision wants all four present
        (raw / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    theirs = datasets.MNIST(tmp_path, train=split == "train", download=False)
    images, labels = load_mnist(split, root=mnist_dir)
    assert np.array_equal(theirs.data.numpy(), np.rint(images * 255).astype(np.uint8))
    assert np.array_equal(theirs.targets.numpy(), labels)
