"""draw.py's server: the page's files, the JSON API, and the four models answering a drawn digit.

    python draw.py --port 0 --no-browser         # drawing.server.main(): see draw.py for the API
"""

import base64
import binascii
import http.server
import json
import math
import re
import sys
import threading
import time
import webbrowser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
from threadpoolctl import threadpool_limits

import cnn_numpy
from common import harness_numpy
import nn_numpy
from common.checkpoint import check_shapes, load_npz
from common.cli import Parser
from common.data import load_mnist
from common.errors import UsageError, UserError
from common.io import strict_json
from common.metrics import softmax
from common.models import MODELS, TITLES, checkpoint_name
from drawing.preprocess import preprocess

KIT = Path(__file__).resolve().parent.parent
PAGE = Path(__file__).resolve().parent / "page"
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
SIDES = (28, 1024)       # the smallest and largest canvas side accepted
# bytes: the largest canvas accepted (1024x1024: 1.4 MB of base64) and room for the JSON around it; the
# page's own 280x280 canvas sends about 105 kB
MAX_BODY = 4 * math.ceil(SIDES[1] ** 2 / 3) + 4096
GET_PATHS = {*STATIC, "/favicon.ico", "/api/models", "/api/test-image"}
POST_PATHS = {"/api/predict"}
EMPTY = "draw a digit"
BODY_TIMEOUT = 5  # seconds a body may pause before a 408: once the headers are in, the rest comes at once
BACKLOG = 128  # connections waiting to be accepted: socketserver's 5 reset some of a class of 50 at once
DROPPED = (ConnectionError, TimeoutError)  # a client gone (BrokenPipe, ConnectionReset, ...): nothing to say


class BadRequest(Exception):
    """A request the server refuses: answered with ``status`` and the message (and ``headers``, e.g. Allow),
    and the server goes on."""

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status, self.headers = status, headers or {}


def one_line(error):
    """An exception as one terminal line: its type and message, newlines folded."""
    return " ".join(f"{type(error).__name__}: {error}".split())


def method_not_allowed(method, path):
    """The refusal of ``method`` on ``path``: 405 with Allow where the path exists, else 404."""
    allowed = "GET, HEAD" if path in GET_PATHS else "POST" if path in POST_PATHS else None
    if allowed is None:
        return BadRequest(404, f"no such page: {path}")
    return BadRequest(405, f"{method} is not allowed on {path}; use {allowed.split(',')[0]}", {"Allow": allowed})


class Slot:
    """One of the four models on the page: its checkpoint, status (ready, loading, missing, failed) and model."""

    def __init__(self, name, path, missing_message):
        self.name, self.path, self.model = name, path, None
        self.status = "loading" if path else "missing"
        self.message = "" if path else missing_message

    def load(self):
        try:
            self.model = (load_numpy_model if self.name.endswith("numpy") else load_torch_model)(self.name, self.path)
        except ImportError as e:
            self.status, self.message = "failed", f"PyTorch is not importable here ({e}); pip install torch"
        except UserError as e:
            self.status, self.message = "failed", str(e)
        except Exception as e:  # whatever else a foreign file provokes: this model fails, the page serves on
            self.status, self.message = "failed", f"cannot load {shown(self.path)}: {type(e).__name__}: {e}"
        else:
            self.status = "ready"
        return self

    def describe(self):
        return {"name": self.name, "title": TITLES[self.name], "status": self.status,
                "source": shown(self.path) if self.path else None, "message": self.message}

    def terminal_line(self):
        if self.status in ("ready", "loading"):
            where = ("loaded " if self.status == "ready" else "loading in the background: ") + shown(self.path)
        else:
            where = self.message
        return f"{self.name:<10} {where}"


def find_checkpoints(checkpoint_dir, reference_dir):
    """model -> (its checkpoint in checkpoint_dir, else in reference_dir, else None; what to do if None)."""
    found = {}
    for name in MODELS:
        places = [Path(d) / checkpoint_name(name) for d in (checkpoint_dir, reference_dir) if d is not None]
        path = next((p for p in places if p.is_file()), None)
        default = Path("checkpoints") / checkpoint_name(name)
        command = f"python {name}.py" + ("" if places[0] == default else f" --checkpoint {places[0]}")
        found[name] = (path, f"missing: no {' or '.join(map(shown, places))}; make it with: {command}")
    return found


def shown(path):
    """``path`` relative to the working directory where it is below it: what a user would type."""
    path = Path(path)
    return str(path.relative_to(Path.cwd()) if path.is_absolute() and path.is_relative_to(Path.cwd()) else path)


def load_numpy_model(name, path):
    model = {"nn_numpy": nn_numpy.mlp, "cnn_numpy": cnn_numpy.cnn}[name](np.random.default_rng(0))
    state, _, _ = load_npz(path, name)
    model.load_state_dict(state, path)
    return model


def load_torch_model(name, path):
    import torch  # here, not at the top: without PyTorch the NumPy models still serve

    import cnn_torch
    import nn_torch
    from common import harness_torch
    torch.set_num_threads(1)  # as threadpool_limits(1) in main(), which ran before PyTorch loaded
    model = {"nn_torch": nn_torch.mlp, "cnn_torch": cnn_torch.cnn}[name]()
    state, _, _ = harness_torch.load_checkpoint(path, name)
    check_shapes({k: v.shape for k, v in model.state_dict().items()}, {k: v.shape for k, v in state.items()}, path)
    model.load_state_dict(state)
    return model.eval()


def numpy_cnn_forward(model, x):
    """The CNN's forward pass layer by layer, as Sequential.forward does, keeping two stages' feature maps.

    x: (1, 1, 28, 28) -> logits (1, 10) and {"conv1": the input of the second Conv2d (16, 14, 14),
    "conv2": the input of Flatten (32, 7, 7)}. Found by type, not index: the layer order may change.
    """
    maps, convs = {}, 0
    for layer in model.layers:
        if isinstance(layer, cnn_numpy.Conv2d):
            convs += 1
            if convs == 2:
                maps["conv1"] = x[0]
        if isinstance(layer, nn_numpy.Flatten):
            maps["conv2"] = x[0]
        x = layer.forward(x)
    return x, maps


def logits_of(slot, image):
    """(28, 28) float32 -> (logits (1, 10), feature maps or None), through the kit's own model code."""
    x = image.reshape(1, 1, 28, 28)
    if slot.name == "cnn_numpy":
        return numpy_cnn_forward(slot.model, x)
    if slot.name == "nn_numpy":
        return harness_numpy.predict(slot.model, x), None
    import torch

    from common import harness_torch
    return harness_torch.predict(slot.model, torch.from_numpy(x)), None


def rounded(array, digits=4):
    return np.round(np.asarray(array, dtype=np.float64), digits).tolist()


class App:
    """What the server answers with: the model slots, and the MNIST test set once a page asks for it."""

    def __init__(self, slots, data_dir=None):
        self.slots, self.data_dir = slots, data_dir
        self.test_set = None
        self.lock = threading.Lock()  # NumPy layers keep their inputs for backward: one forward at a time

    def models(self):
        return {"models": [slot.describe() for slot in self.slots]}

    def predict(self, image):
        """(28, 28) float32 or None (nothing drawn) -> the page's JSON answer."""
        if image is None:
            return {"status": "empty", "message": EMPTY, **self.models()}
        answers, maps = [], None
        with self.lock:
            for slot in self.slots:
                answer = slot.describe()
                if slot.status == "ready":
                    logits, slot_maps = logits_of(slot, image)
                    probabilities = softmax(logits)[0]
                    answer.update(probabilities=rounded(probabilities, 6), prediction=int(probabilities.argmax()))
                    maps = slot_maps or maps
                answers.append(answer)
        return {"status": "ok", "image": rounded(image), "models": answers,
                "feature_maps": {k: rounded(v) for k, v in maps.items()} if maps else None}

    def test_image(self, index=None):
        """An MNIST test image as it is in the test set (already MNIST-prepared), its label and the answers."""
        with self.lock:
            if self.test_set is None:
                try:
                    self.test_set = load_mnist("test", self.data_dir, download=False)
                except UserError as e:
                    raise BadRequest(503, f"no MNIST test set here ({e})") from None
        images, labels = self.test_set
        if index is None:
            index = int(np.random.default_rng().integers(len(images)))
        if not 0 <= index < len(images):
            raise BadRequest(400, f"index must be from 0 to {len(images) - 1}, got {index}")
        return {"index": index, "label": int(labels[index]), **self.predict(images[index])}


def canvas_from_json(body):
    """A /api/predict body -> (H, W) float64 grey levels in [0, 1]; anything else is a BadRequest(400)."""
    try:
        request = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(400, f"the body is not JSON ({e})") from None
    except RecursionError:
        raise BadRequest(400, "the body's JSON is nested too deeply") from None
    except ValueError:  # the only other ValueError json.loads raises: Python's limit on an int's digits
        raise BadRequest(400, f"the body's JSON has a number over {sys.get_int_max_str_digits()} digits") from None
    if not isinstance(request, dict):
        raise BadRequest(400, 'expected a JSON object {"width": W, "height": H, "pixels": base64}')
    width, height, pixels = request.get("width"), request.get("height"), request.get("pixels")
    if not all(type(v) is int and SIDES[0] <= v <= SIDES[1] for v in (width, height)):
        raise BadRequest(400, f"width and height must be whole numbers from {SIDES[0]} to {SIDES[1]}, "
                              f"got {width!r} and {height!r}")
    try:
        data = base64.b64decode(pixels, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise BadRequest(400, "pixels must be a base64 string of one grey byte per pixel") from None
    if len(data) != width * height:
        raise BadRequest(400, f"pixels holds {len(data)} bytes; a {width}x{height} canvas needs {width * height}")
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width) / 255.0


def parse_index(text):
    """The ?index= of /api/test-image as an int; anything but digits with an optional minus is a BadRequest(400)."""
    if not re.fullmatch(r"-?[0-9]{1,18}", text):  # 18: far past any test set, and int() takes it
        raise BadRequest(400, f"index must be a whole number (at most 18 digits), got {text[:40]!r}")
    return int(text)


def make_handler(app):
    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = 30  # seconds: a client that stops sending mid-request loses its thread, not the server

        def do_GET(self):
            self.answer(self.route_get)

        def do_HEAD(self):
            self.answer(self.route_get, send_body=False)

        def do_POST(self):
            self.answer(self.route_post)

        def __getattr__(self, name):
            """Every other method (PUT, DELETE, OPTIONS, ...): a JSON 405/404 instead of http.server's 501 page."""
            if name.startswith("do_"):
                return self.refuse_method
            raise AttributeError(name)

        def refuse_method(self):
            self.close_connection = True  # a body it may carry is never read
            self.answer(self.route_refused)

        def route_refused(self):
            raise method_not_allowed(self.command, urlsplit(self.path).path)

        def route_get(self):
            url = urlsplit(self.path)
            if url.path in POST_PATHS:
                raise method_not_allowed(self.command, url.path)
            if url.path in STATIC:
                name, content_type = STATIC[url.path]
                return 200, content_type, (PAGE / name).read_bytes()
            if url.path == "/favicon.ico":  # asked for by every browser; no icon, and no 404 in its console
                return 204, "image/x-icon", b""
            if url.path == "/api/models":
                return 200, None, app.models()
            if url.path == "/api/test-image":
                index = parse_qs(url.query).get("index", [None])[0]
                return 200, None, app.test_image(None if index is None else parse_index(index))
            raise BadRequest(404, f"no such page: {url.path}")

        def route_post(self):
            path = urlsplit(self.path).path
            if path not in POST_PATHS:
                self.close_connection = True  # its body is never read
                raise method_not_allowed("POST", path) if path in GET_PATHS else BadRequest(
                    404, f"no such endpoint: {self.path}")
            return 200, None, app.predict(preprocess(canvas_from_json(self.read_body())))

        def read_body(self):
            """The request's body: Content-Length bytes, each pause in them at most BODY_TIMEOUT s (else 408)."""
            digits = self.headers.get("Content-Length")
            if digits is None or not (digits.isascii() and digits.isdigit()):
                raise BadRequest(411, "a Content-Length header is required")
            length = int(digits) if len(digits) <= 18 else math.inf  # int() refuses more than 4300 digits
            self.connection.settimeout(BODY_TIMEOUT)
            try:
                if length > MAX_BODY:
                    self.discard(length)
                    raise BadRequest(413, f"the body is {digits[:40]} bytes; the limit is {MAX_BODY}")
                body = self.rfile.read(length)
            except TimeoutError:
                self.close_connection = True  # what may still come of the body is no request
                raise BadRequest(408, f"the body stopped coming: nothing for {BODY_TIMEOUT} s") from None
            finally:
                self.connection.settimeout(self.timeout)
            if len(body) < length:  # the client closed its side early; the answer can still reach it
                self.close_connection = True
                raise BadRequest(400, f"the body ended after {len(body)} of its {length} bytes")
            return body

        def discard(self, length):
            """Read an oversized body away in chunks, so the client sees the 413 and not a reset connection."""
            if length > 50 * MAX_BODY:
                self.close_connection = True
                return
            while length > 0:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    break
                length -= len(chunk)

        def answer(self, route, send_body=True):
            started = time.perf_counter()
            headers = {}
            try:
                status, content_type, body = route()
                if isinstance(body, dict) and "image" in body:  # the handler's time, all but the JSON encoding
                    body["milliseconds"] = round((time.perf_counter() - started) * 1000, 2)
            except BadRequest as e:
                status, content_type, body, headers = e.status, None, {"error": str(e)}, e.headers
            except DROPPED:
                raise  # no one to answer: Server.handle_error lets it go quietly
            except Exception as e:  # a bug must not stop the server: one line here, a 500 to the page
                print(f"draw.py: {self.command} {self.path}: {one_line(e)}", file=sys.stderr)
                status, content_type, body = 500, None, {"error": f"{type(e).__name__}: {e}"}
            if content_type is None:
                content_type, body = "application/json", strict_json(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", "default-src 'self'")  # nothing from elsewhere
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            if send_body:  # HEAD: the headers GET would send, no body
                self.wfile.write(body)

        def log_message(self, *args):
            pass

    return Handler


def port_number(text):
    if not text.isdecimal() or int(text) > 65535:
        raise ValueError(text)
    return int(text)


def build_parser():
    p = Parser(prog="draw.py", description="Serve a page to draw a digit and see all four models' answers.")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default: %(default)s)")
    p.add_argument("--port", type=port_number, default=8000, help="port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a browser")
    p.add_argument("--checkpoint-dir", default=None,
                   help="read <model>.npz/.pt from here only (default: checkpoints/, then the kit's reference/)")
    p.add_argument("--data-dir", default=None,
                   help="folder with the MNIST test files, for the test-image button (default: $MNIST_DIR, ./data)")
    return p


class Server(http.server.ThreadingHTTPServer):
    """The page's server: a thread per connection, a backlog for a classroom, quiet about dropped clients."""

    request_queue_size = BACKLOG
    daemon_threads = True  # Ctrl-C stops the server without waiting for a client's open connection

    def handle_error(self, request, client_address):
        """A client that went away: nothing, it is normal; any other error: one line, not a traceback."""
        error = sys.exc_info()[1]
        if not isinstance(error, DROPPED):
            print(f"draw.py: a request from {client_address[0]}: {one_line(error)}", file=sys.stderr, flush=True)


def serve(host, port, app):
    try:
        return Server((host, port), make_handler(app))
    except OSError as e:
        raise UsageError(f"cannot serve on {host}:{port} ({e.strerror or e}); "
                         f"pass another --port (0 picks a free one)") from None


def main(argv=None):
    args = build_parser().parse_args(argv)
    # One image at a time: BLAS threads only fight over the cores (a 4-model answer took 20-30 ms instead
    # of 1-2 ms here with OpenBLAS's default of one thread per core).
    threadpool_limits(1)
    reference = None if args.checkpoint_dir else KIT / "reference"
    found = find_checkpoints(args.checkpoint_dir or "checkpoints", reference)
    slots = [Slot(name, path, missing) for name, (path, missing) in found.items()]
    for slot in slots:
        if slot.name.endswith("numpy") and slot.path:
            slot.load()
        print(slot.terminal_line(), flush=True)
    if all(path is None for path, _ in found.values()):
        print("no trained model found: `make reproduce` trains all four; the page still shows the "
              "preprocessing", flush=True)
    server = serve(args.host, args.port, App(slots, args.data_dir))
    url = f"http://{args.host}:{server.server_address[1]}/"
    print(f"serving {url} (Ctrl-C to stop)", flush=True)
    threading.Thread(target=load_in_background, args=(slots,), daemon=True).start()
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()


def load_in_background(slots):
    for slot in slots:
        if slot.status == "loading":
            print(slot.load().terminal_line(), flush=True)

