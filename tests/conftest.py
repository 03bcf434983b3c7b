"""Shared fixtures: the real MNIST (skipped without MNIST_DIR), tiny IDX files, a local HTTP server."""

import functools
import gzip
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder with the four official files; tests that need it are skipped where it is not set."""
    value = os.environ.get("MNIST_DIR")
    if not value or not Path(value).is_dir():
        pytest.skip("real MNIST needed: set MNIST_DIR to the folder with the four official files "
                    "(.ci/run sets it to ../shared/mnist)")
    return Path(value).resolve()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No MNIST_DIR, no MNIST_MIRROR, and a working directory whose ./data is empty."""
    for name in ("MNIST_DIR", "MNIST_MIRROR", "MNIST_TIMEOUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def idx_bytes(array, magic=None):
    """An IDX file (uint8) holding ``array``; ``magic`` overrides the header's magic number."""
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 + array.ndim) if magic is None else magic
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.tobytes()


def write_idx(path, array, magic=None, compress=None):
    data = idx_bytes(array, magic)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compress = path.suffix == ".gz" if compress is None else compress
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def write_tiny_split(folder, split="test", n=5, labels=None):
    """A tiny, well-formed images/labels pair under the official names (their md5 will not match)."""
    names = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
             "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}[split]
    rng = np.random.default_rng(0)
    write_idx(Path(folder) / names[0], rng.integers(0, 256, (n, 28, 28)))
    write_idx(Path(folder) / names[1], np.arange(n) % 10 if labels is None else labels)
    return [Path(folder) / name for name in names]


class Server:
    """An HTTP server on 127.0.0.1 (port 0) in a thread; ``behaviour`` maps a file name to how to answer."""

    def __init__(self, files):
        self.files = dict(files)      # name -> bytes
        self.behaviour = {}           # name -> "drop" | "stall" | "404"
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                mode = server.behaviour.get(name)
                if name not in server.files or mode == "404":
                    self.send_error(404, "Not Found")
                    return
                body = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if mode == "drop":
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                if mode == "stall":
                    self.wfile.write(body[:100])
                    self.wfile.flush()
                    server.release.wait(10)
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.release = threading.Event()
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_mirror(mnist_dir):
    """A local mirror serving the official .gz files (read from MNIST_DIR)."""
    server = Server({p.name: p.read_bytes() for p in Path(mnist_dir).glob("*-ubyte.gz")})
    yield server
    server.close()


def run_script(*args, env=None, cwd=ROOT, timeout=600, input=None):
    """Run ``python ARGS`` from the repo root as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout, input=input)


@functools.lru_cache(maxsize=None)
def official_payload(mnist_dir, name):
    return gzip.decompress((Path(mnist_dir) / f"{name}.gz").read_bytes())
