"""benchmarks/ab_steps.py: two checkouts side by side in one process; the tool's verdict on bit-identity must be
able to say both yes and no. (Its timings are never checked here.)"""

import re
import shutil

import pytest

from conftest import ROOT, run_script

SHORT = ["--blocks", "2", "--steps", "3"]


def copy_of_the_kit(folder, change=None):
    """The modules ab_steps.py loads, copied into ``folder``; ``change`` = (file, old, new) edits one."""
    for name in ("cnn_numpy.py", "nn_numpy.py"):
        shutil.copy(ROOT / name, folder / name)
    for package in ("common", "fast_cnn"):
        shutil.copytree(ROOT / package, folder / package, ignore=shutil.ignore_patterns("__pycache__"))
    if change:
        path, old, new = change
        text = (folder / path).read_text()
        assert old in text
        (folder / path).write_text(text.replace(old, new, 1))
    return folder


def verdict(result):
    assert result.returncode == 0, result.stderr
    match = re.search(r"old ([\d.]+) ms/image, new ([\d.]+) ms/image .* bit-identical: (yes|no)", result.stdout)
    assert match, result.stdout
    assert float(match[1]) > 0 and float(match[2]) > 0
    return match[3]


@pytest.mark.parametrize("flags", [["--processes", "2", "--batch-size", "32"],
                                   ["--model", "mlp", "--batch-size", "32"]])
def test_the_same_code_against_itself_is_bit_identical(tmp_path, mnist_dir, flags):
    old = copy_of_the_kit(tmp_path)
    assert verdict(run_script("benchmarks/ab_steps.py", "--old", old, *SHORT, *flags,
                              env={"MNIST_DIR": str(mnist_dir)})) == "yes"


def test_a_change_in_rounding_is_reported(tmp_path, mnist_dir):
    # im2col blocks of one image: the second convolution's weight gradient is summed in another order
    old = copy_of_the_kit(tmp_path, ("fast_cnn/layers.py", "BLOCK_BYTES = 2 ** 20", "BLOCK_BYTES = 1"))
    result = run_script("benchmarks/ab_steps.py", "--old", old, *SHORT, env={"MNIST_DIR": str(mnist_dir)})
    assert verdict(result) == "no"


def test_a_folder_without_the_kit_is_one_clear_error(tmp_path):
    result = run_script("benchmarks/ab_steps.py", "--old", tmp_path)
    assert result.returncode == 2
    assert "holds no cnn_numpy.py" in result.stderr and "Traceback" not in result.stderr
