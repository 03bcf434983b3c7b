"""Load on draw.py's server: many clients posting the page's own canvas at once, as a classroom would.

    python benchmarks/load_draw.py                          # 50 clients x 100 POST /api/predict (a few minutes)
    python benchmarks/load_draw.py --clients 10 --requests 20   # a quick look
    python benchmarks/load_draw.py --checkpoint-dir /tmp/ck     # passed on to draw.py

Starts `python draw.py --port 0 --no-browser --host 127.0.0.1` (the models of checkpoints/, else reference/),
waits for its four models, then each client thread sends its POST /api/predict requests one after another, every
one on a fresh connection: draw.py answers HTTP/1.0 and closes the connection after each answer, so there is no
keep-alive to measure. The body is what the page sends for a 7 drawn on its 280x280 canvas (22-pixel anti-aliased
strokes; about 105 kB of JSON). Printed: requests/s (answers over the wall time of the whole load), the p50 and
p99 latency of the answered requests (connect to last byte, ms), and how many requests ended in a connection
reset or another error, or in a status other than 200. The clients run in this process on the same cores as the
server, as the fuzzing session's did, so the figures are the pair's, not the server's alone: compare runs made
side by side on one machine. Only 127.0.0.1 is ever contacted; the load stops after --limit seconds (each
request has a 30 s timeout), and the server is stopped at the end, whatever happens.
"""

import argparse
import base64
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # the only address this benchmark talks to
SEVEN = [(0.0, 0.0), (1.0, 0.0), (0.35, 1.6)]  # a "7" as a polyline in units of its width, as tests draw it
STROKE = 22  # pixels: the page's pen on its 280-pixel canvas (drawing/page/app.js)
LOADED = threading.Event()  # draw.py's models are loaded: its terminal lines stop being shown


def canvas_body(size=280, supersample=3):
    """The page's /api/predict body for a 7 drawn on its canvas: white anti-aliased ink on black."""
    points = [(90 + 90 * x, 40 + 90 * y) for x, y in SEVEN]
    n = size * supersample
    y, x = (np.mgrid[0:n, 0:n] + 0.5) / supersample
    ink = np.zeros((n, n), dtype=bool)
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0, 1)
        ink |= np.hypot(x - x0 - t * dx, y - y0 - t * dy) <= STROKE / 2
    grey = np.round(ink.reshape(size, supersample, size, supersample).mean(axis=(1, 3)) * 255).astype(np.uint8)
    return json.dumps({"width": size, "height": size, "pixels": base64.b64encode(grey.tobytes()).decode()})


def start_server(extra):
    """draw.py on a free port of 127.0.0.1 -> (process, port, its terminal lines so far and to come); the lines
    until its models are loaded are shown on stderr, later ones only counted (under load they may be many)."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "draw.py"), "--host", HOST, "--port", "0", "--no-browser",
                             *extra], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    port, lines = None, []

    def relay():  # keeps reading, so the server never blocks on a full pipe
        for line in proc.stdout:
            lines.append(line)
            if not LOADED.is_set():
                sys.stderr.write("draw.py| " + line)

    threading.Thread(target=relay, daemon=True).start()
    deadline = time.monotonic() + 60
    while port is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("draw.py did not start:\n" + "".join(lines))
        port = next((int(line.split()[1].rstrip("/").rsplit(":", 1)[1]) for line in lines
                     if line.startswith("serving ")), None)
        time.sleep(0.05)
    return proc, port, lines


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"} if body else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_loaded(port):
    """Until no model is still loading (PyTorch loads in the background), so every request does the same work."""
    deadline = time.monotonic() + 60
    while any(m["status"] == "loading" for m in json.loads(request(port, "GET", "/api/models")[1])["models"]):
        if time.monotonic() > deadline:
            raise SystemExit("the models did not load in 60 s")
        time.sleep(0.1)
    LOADED.set()


def load(port, body, clients, requests, limit):
    """Every client's requests, all clients at once -> (wall seconds, latencies in s, {failure: count})."""
    latencies, failures, lock = [], {}, threading.Lock()
    start, deadline = threading.Barrier(clients + 1), None

    def client():
        start.wait()
        for _ in range(requests):
            if time.monotonic() > deadline:
                with lock:
                    failures["not sent: --limit reached"] = failures.get("not sent: --limit reached", 0) + 1
                continue
            began = time.perf_counter()
            try:
                status, _ = request(port, "POST", "/api/predict", body)
                failure = None if status == 200 else f"status {status}"
            except OSError as e:  # ConnectionResetError, BrokenPipeError, a refused connect, a timeout
                failure = type(e).__name__
            with lock:
                if failure is None:
                    latencies.append(time.perf_counter() - began)
                else:
                    failures[failure] = failures.get(failure, 0) + 1

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + limit
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0) + 35)  # the last request's own 30 s timeout
    return time.perf_counter() - began, latencies, failures


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=50, help="client threads, all at once (default: %(default)s)")
    p.add_argument("--requests", type=int, default=100, help="requests per client (default: %(default)s)")
    p.add_argument("--limit", type=float, default=600, help="seconds before the load stops (default: %(default)s)")
    p.add_argument("--checkpoint-dir", default=None, help="passed on to draw.py")
    args = p.parse_args(argv)
    body = canvas_body()
    proc, port, lines = start_server(["--checkpoint-dir", args.checkpoint_dir] if args.checkpoint_dir else [])
    try:
        wait_loaded(port)
        assert request(port, "POST", "/api/predict", body)[0] == 200, "the canvas body is refused"
        wall, latencies, failures = load(port, body, args.clients, args.requests, args.limit)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    total = args.clients * args.requests
    ms = np.percentile(np.array(latencies) * 1000, [50, 99]) if latencies else [float("nan")] * 2
    resets = failures.get("ConnectionResetError", 0)
    print(f"{args.clients} clients x {args.requests} POST /api/predict ({len(body) / 1000:.0f} kB body), "
          f"a fresh connection each, 127.0.0.1:{port}")
    print(f"answered 200: {len(latencies)} of {total} in {wall:.1f} s: {len(latencies) / wall:.0f} requests/s, "
          f"p50 {ms[0]:.0f} ms, p99 {ms[1]:.0f} ms")
    print(f"connection resets: {resets} of {total}; all failures: {sum(failures.values())} of {total} "
          f"{dict(sorted(failures.items())) or ''}".rstrip())
    print(f"tracebacks on draw.py's terminal: {sum('Traceback' in line for line in lines)}")


if __name__ == "__main__":
    main()
