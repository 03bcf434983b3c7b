"""draw.py: the server's answers against the kit's own forward passes, its refusals, and the page in a real
headless Chromium (skipped, with the reason, where Chromium or Playwright is not installed)."""

import base64
import http.client
import json
import os
import queue
import select
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from conftest import ROOT
from test_preprocess import draw_strokes, seven

import cnn_numpy
from drawing import server as draw_server
from common import harness_numpy
import nn_numpy
from common.checkpoint import FORMAT, load_npz, save_npz
from common.models import MODELS
from common.data import load_mnist
from common.metrics import softmax
from drawing.preprocess import preprocess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def record(name):
    return {"format": FORMAT, "model": name, "framework": name.split("_")[1], "config": {}, "history": [],
            "seconds_total": 0.0}


def save_random_model(folder, name):
    """A randomly initialised model saved as the script would save a trained one."""
    if name.endswith("numpy"):
        build = {"nn_numpy": nn_numpy.mlp, "cnn_numpy": cnn_numpy.cnn}[name]
        save_npz(folder / f"{name}.npz", build(np.random.default_rng(1)).state_dict(), record(name), [0.0])
        return
    import torch

    import cnn_torch
    import nn_torch
    from common import harness_torch
    torch.manual_seed(1)
    model = {"nn_torch": nn_torch.mlp, "cnn_torch": cnn_torch.cnn}[name]()
    harness_torch.save_checkpoint(folder / f"{name}.pt", harness_torch.state_dict(model), record(name), [0.0])


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory):
    pytest.importorskip("torch")
    folder = tmp_path_factory.mktemp("checkpoints")
    for name in MODELS:
        save_random_model(folder, name)
    return folder


def reference_logits(folder, image):
    """model -> logits (10,) for a (28, 28) image, from models loaded and run here, as the scripts do."""
    import torch

    import cnn_torch
    import nn_torch
    from common import harness_torch
    x = np.asarray(image, dtype=np.float32).reshape(1, 1, 28, 28)
    out = {}
    for name, build in (("nn_numpy", nn_numpy.mlp), ("cnn_numpy", cnn_numpy.cnn)):
        model = build(np.random.default_rng(0))
        model.load_state_dict(load_npz(folder / f"{name}.npz", name)[0])
        out[name] = harness_numpy.predict(model, x)[0]
    for name, build in (("nn_torch", nn_torch.mlp), ("cnn_torch", cnn_torch.cnn)):
        model = build()
        model.load_state_dict(harness_torch.load_checkpoint(folder / f"{name}.pt", name)[0])
        out[name] = harness_torch.predict(model, torch.from_numpy(x))[0]
    return out


class DrawServer:
    """``python draw.py --port 0 --no-browser ARGS`` in a subprocess; its terminal lines are kept in .lines."""

    def __init__(self, *args, env=None, cwd=ROOT):
        full_env = {k: v for k, v in {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}.items() if v is not None}
        self.started = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "draw.py"), "--port", "0", "--no-browser", *args],
                                     cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines, self.queue = [], queue.Queue()
        threading.Thread(target=self.read, daemon=True).start()
        self.url = None
        while self.url is None:
            line = self.queue.get(timeout=60)
            if line is None:
                raise AssertionError("draw.py stopped:\n" + "".join(self.lines))
            if line.startswith("serving "):
                self.url = line.split()[1]
        self.port = int(self.url.rstrip("/").rsplit(":", 1)[1])

    def read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            self.queue.put(line)
        self.queue.put(None)

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        is_json = response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(data) if is_json else data

    def predict(self, canvas):
        return self.request("POST", "/api/predict", predict_body(canvas))

    def wait_loaded(self):
        deadline = time.monotonic() + 60
        while any(m["status"] == "loading" for m in self.request("GET", "/api/models")[1]["models"]):
            assert time.monotonic() < deadline, "the PyTorch models did not load in 60 s"
            time.sleep(0.1)
        return self.request("GET", "/api/models")[1]["models"]

    def close(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def predict_body(canvas):
    """The /api/predict body for a (H, W) canvas of grey levels in [0, 1], as the page sends it."""
    grey = np.round(np.asarray(canvas) * 255).astype(np.uint8)
    body = {"width": grey.shape[1], "height": grey.shape[0], "pixels": base64.b64encode(grey.tobytes()).decode()}
    return json.dumps(body)


def raw_response(sock):
    """(status, JSON body) of the answer read from a raw socket."""
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response.status, json.loads(response.read())


def reset_close(sock):
    """Close ``sock`` with a reset (RST) instead of the orderly FIN: a client that crashed or was killed."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@pytest.fixture(scope="module")
def server(checkpoints):
    s = DrawServer("--checkpoint-dir", checkpoints)
    yield s
    s.close()


def by_name(models):
    return {m["name"]: m for m in models}


# --- the server ------------------------------------------------------------------------------------------

def test_the_page_and_its_assets_are_served_by_the_kit_and_fetch_nothing_else(server):
    for path in ("/", "/app.js", "/style.css"):
        status, body = server.request("GET", path)
        assert status == 200 and b"http://" not in body and b"https://" not in body
    assert server.request("GET", "/../draw.py")[0] == 404
    assert server.request("GET", "/draw.py")[0] == 404


def test_the_answers_are_the_kits_own_forward_passes(server, checkpoints):
    models = server.wait_loaded()
    assert all(m["status"] == "ready" and m["source"] for m in models)
    canvas = seven(280, 90, 40, 60)
    status, answer = server.predict(canvas)
    assert status == 200 and answer["status"] == "ok"
    image = preprocess(np.round(canvas * 255) / 255)
    np.testing.assert_allclose(answer["image"], image, atol=1e-4)
    expected = reference_logits(checkpoints, image)
    for name, model in by_name(answer["models"]).items():
        np.testing.assert_allclose(model["probabilities"], softmax(expected[name][None])[0], atol=2e-6)
        assert model["prediction"] == expected[name].argmax()
    # The issue's budget: four models' answer in under 100 ms of the server's time (median of ten).
    assert np.median([server.predict(canvas)[1]["milliseconds"] for _ in range(10)]) < 100


def test_the_feature_maps_are_the_numpy_cnns_stages(server, checkpoints):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    state = load_npz(checkpoints / "cnn_numpy.npz", "cnn_numpy")[0]
    (w1, b1), (w2, b2) = [(torch.from_numpy(state[k]), torch.from_numpy(state[k[:-1] + "b"]))
                          for k in sorted(state, key=lambda k: int(k.split(".")[0])) if state[k].ndim == 4]
    canvas = seven(280, 90, 40, 60)
    answer = server.predict(canvas)[1]
    x = torch.from_numpy(preprocess(np.round(canvas * 255) / 255)).reshape(1, 1, 28, 28)
    conv1 = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=1)), 2)
    conv2 = F.max_pool2d(F.relu(F.conv2d(conv1, w2, b2, padding=1)), 2)
    np.testing.assert_allclose(answer["feature_maps"]["conv1"], conv1[0].numpy(), atol=1e-4)
    np.testing.assert_allclose(answer["feature_maps"]["conv2"], conv2[0].numpy(), atol=1e-4)


def test_numpy_cnn_forward_keeps_the_maps_by_layer_type_and_computes_model_forward():
    model = cnn_numpy.cnn(np.random.default_rng(0))
    x = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)
    logits, maps = draw_server.numpy_cnn_forward(model, x)
    np.testing.assert_array_equal(logits, model.forward(x))
    assert maps["conv1"].shape == (16, 14, 14) and maps["conv2"].shape == (32, 7, 7)
    # ReLU and max-pooling commute; a kit that swaps them must give the same maps.
    relu, pool = model.layers[1], model.layers[2]
    model.layers[1], model.layers[2] = pool, relu
    model.layers[4], model.layers[5] = model.layers[5], model.layers[4]
    _, swapped = draw_server.numpy_cnn_forward(model, x)
    for stage in maps:
        np.testing.assert_allclose(swapped[stage], maps[stage], rtol=1e-6)


@pytest.mark.parametrize("canvas", [np.zeros((280, 280)), draw_strokes(280, [(140, 140), (141, 141)], 20)],
                         ids=["empty", "one-click"])
def test_an_empty_canvas_gets_draw_a_digit_and_no_prediction(server, canvas):
    status, answer = server.predict(canvas)
    assert status == 200 and answer["status"] == "empty" and answer["message"] == "draw a digit"
    assert not any("probabilities" in m or "prediction" in m for m in answer["models"])


def test_bad_requests_get_a_clear_4xx_and_the_server_keeps_serving(server):
    good = seven(280, 90, 40, 60)
    pixels = base64.b64encode(bytes(280 * 280)).decode()
    bad = [("POST", "/api/predict", b"{not json", 400, "not JSON"),
           ("POST", "/api/predict", b"\xff\xfe", 400, "not JSON"),
           ("POST", "/api/predict", b"[1, 2]", 400, "JSON object"),
           ("POST", "/api/predict", json.dumps({"width": 280, "height": 28, "pixels": pixels}), 400, "needs 7840"),
           ("POST", "/api/predict", json.dumps({"width": 5000, "height": 280, "pixels": pixels}), 400, "from 28"),
           ("POST", "/api/predict", json.dumps({"width": 280, "height": 280, "pixels": "@@@"}), 400, "base64"),
           ("POST", "/api/predict", json.dumps({"width": 280, "height": 280, "pixels": 7}), 400, "base64"),
           ("POST", "/api/predict", b"x" * (draw_server.MAX_BODY + 1), 413, "limit"),
           ("POST", "/api/elsewhere", b"{}", 404, "no such"),
           ("GET", "/api/test-image?index=abc", None, 400, "whole number"),
           ("GET", "/nothing-here", None, 404, "no such page")]
    for method, path, body, status, words in bad:
        got, answer = server.request(method, path, body)
        assert (got, words in answer["error"]) == (status, True), (path, body[:40] if body else None, answer)
        assert server.predict(good)[0] == 200


def test_every_other_method_gets_json_405_with_allow_or_404_and_the_server_keeps_serving(server):
    """Issue 22: GET /api/predict was a 404, HEAD and PUT got http.server's 501 HTML page."""
    good = seven(280, 90, 40, 60)
    cases = [("GET", "/api/predict", 405, "POST"), ("PUT", "/api/predict", 405, "POST"),
             ("DELETE", "/api/predict", 405, "POST"), ("POST", "/api/models", 405, "GET, HEAD"),
             ("PUT", "/", 405, "GET, HEAD"), ("OPTIONS", "/api/test-image", 405, "GET, HEAD"),
             ("PATCH", "/nothing-here", 404, None), ("BREW", "/api/models", 405, "GET, HEAD")]
    for method, path, status, allow in cases:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request(method, path, body=b"{}" if method in ("PUT", "PATCH", "POST") else None)
        response = conn.getresponse()
        answer = json.loads(response.read())
        conn.close()
        assert (response.status, response.getheader("Allow")) == (status, allow), (method, path, answer)
        assert response.getheader("Content-Type") == "application/json" and answer["error"], (method, path)
        assert server.predict(good)[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("HEAD", "/api/models")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type") == "application/json"
    assert int(response.getheader("Content-Length")) > 0 and response.read() == b""  # as GET, without the body
    conn.close()


def test_the_largest_canvas_the_server_accepts_fits_its_body_limit(server):
    """Issue 22: it accepted sides up to 1024 but a 1024x1024 canvas's body exceeded the 1 MB limit (413)."""
    side = draw_server.SIDES[1]
    canvas = np.zeros((side, side))
    canvas[300:700, 480:540] = 1.0  # a "1", bright ink on black
    grey = np.round(canvas * 255).astype(np.uint8)
    body = json.dumps({"width": side, "height": side, "pixels": base64.b64encode(grey.tobytes()).decode()},
                      indent=2)  # with whitespace: a client may send some
    assert len(body) <= draw_server.MAX_BODY
    status, answer = server.request("POST", "/api/predict", body)
    assert status == 200 and answer["status"] == "ok", answer


def test_a_body_without_content_length_is_refused(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest("POST", "/api/predict")
    conn.endheaders()
    response = conn.getresponse()
    assert response.status == 411 and b"Content-Length" in response.read()


def test_a_missing_model_says_how_to_make_it_and_the_others_answer(checkpoints, tmp_path):
    for name in ("nn_numpy", "nn_torch", "cnn_numpy"):
        shutil.copy(next(checkpoints.glob(f"{name}.*")), tmp_path)
    s = DrawServer("--checkpoint-dir", tmp_path)
    try:
        models = by_name(s.wait_loaded())
        assert models["cnn_torch"]["status"] == "missing"
        assert f"python cnn_torch.py --checkpoint {tmp_path}/cnn_torch.pt" in models["cnn_torch"]["message"]
        assert any("cnn_torch" in line and "python cnn_torch.py" in line for line in s.lines)
        answer = by_name(s.predict(seven(280, 90, 40, 60))[1]["models"])
        assert "prediction" not in answer["cnn_torch"] and "prediction" in answer["nn_torch"]
    finally:
        s.close()


def test_with_no_checkpoint_at_all_it_starts_and_says_so(tmp_path):
    s = DrawServer("--checkpoint-dir", tmp_path)
    try:
        assert any("no trained model found" in line for line in s.lines)
        assert all(m["status"] == "missing" for m in s.request("GET", "/api/models")[1]["models"])
        status, answer = s.predict(seven(280, 90, 40, 60))
        assert status == 200 and answer["feature_maps"] is None and len(answer["image"]) == 28
    finally:
        s.close()


def test_without_pytorch_the_numpy_models_still_answer(checkpoints, tmp_path):
    fake = tmp_path / "no_torch" / "torch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('No module named torch (hidden by the test)')\n")
    s = DrawServer("--checkpoint-dir", checkpoints, env={"PYTHONPATH": str(fake.parent)})
    try:
        models = by_name(s.wait_loaded())
        assert models["nn_torch"]["status"] == models["cnn_torch"]["status"] == "failed"
        assert "PyTorch is not importable" in models["nn_torch"]["message"]
        answer = by_name(s.predict(seven(280, 90, 40, 60))[1]["models"])
        assert "prediction" in answer["nn_numpy"] and "prediction" in answer["cnn_numpy"]
    finally:
        s.close()


def test_a_corrupt_checkpoint_is_reported_and_the_others_serve(checkpoints, tmp_path):
    for path in checkpoints.iterdir():
        shutil.copy(path, tmp_path)
    (tmp_path / "cnn_numpy.npz").write_bytes(b"not a zip file")
    s = DrawServer("--checkpoint-dir", tmp_path)
    try:
        models = by_name(s.wait_loaded())
        assert models["cnn_numpy"]["status"] == "failed"
        assert "not a readable checkpoint" in models["cnn_numpy"]["message"]
        assert models["nn_numpy"]["status"] == "ready"
    finally:
        s.close()


def test_checkpoints_come_from_the_checkpoint_dir_then_reference(tmp_path):
    own, reference = tmp_path / "checkpoints", tmp_path / "reference"
    own.mkdir()
    reference.mkdir()
    (own / "nn_numpy.npz").touch()
    (reference / "nn_numpy.npz").touch()
    (reference / "cnn_torch.pt").touch()
    found = draw_server.find_checkpoints(own, reference)
    assert found["nn_numpy"][0] == own / "nn_numpy.npz"
    assert found["cnn_torch"][0] == reference / "cnn_torch.pt"
    assert found["cnn_numpy"][0] is None and "make it with: python cnn_numpy.py" in found["cnn_numpy"][1]
    assert draw_server.find_checkpoints(own, None)["cnn_torch"][0] is None  # --checkpoint-dir: that folder only


def test_a_port_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(ROOT / "draw.py"), "--port", str(port), "--no-browser",
                                 "--checkpoint-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                                timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "another --port" in result.stderr and "Traceback" not in result.stderr


def test_a_test_image_comes_with_its_label_and_the_kits_answers(server, checkpoints, mnist_dir):
    images, labels = load_mnist("test", mnist_dir, download=False)
    status, answer = server.request("GET", "/api/test-image?index=7")
    assert status == 200 and answer["index"] == 7 and answer["label"] == labels[7]
    np.testing.assert_allclose(answer["image"], images[7], atol=1e-4)  # the test image as it is
    expected = reference_logits(checkpoints, images[7])
    assert {m["name"]: m["prediction"] for m in answer["models"]} == {k: v.argmax() for k, v in expected.items()}
    assert server.request("GET", "/api/test-image?index=10000")[0] == 400
    assert 0 <= server.request("GET", "/api/test-image")[1]["index"] < 10000


def test_without_mnist_the_test_image_request_says_so(tmp_path):
    s = DrawServer("--checkpoint-dir", tmp_path, env={"MNIST_DIR": None}, cwd=tmp_path)
    try:
        status, answer = s.request("GET", "/api/test-image")
        assert status == 503 and "no MNIST test set here" in answer["error"]
    finally:
        s.close()


# --- clients that misbehave, and many at once (issues 4-6, from a fuzzing session) -----------------------------

def test_a_client_that_hangs_up_early_leaves_no_traceback_and_the_server_serves_on(server):
    """Issue 4: each early disconnect printed socketserver's traceback on draw.py's terminal (387 under load)."""
    server.wait_loaded()
    good = seven(280, 90, 40, 60)
    body = predict_body(good).encode()
    head = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n\r\n" % len(body)
    sent = [b"GET /api/mo",                                            # half a request line
            b"GET /api/models HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",     # a whole request, its answer not read
            head + body[:1000],                                        # half a body
            head + body]                                               # a prediction, its answer not read
    before = len(server.lines)
    for _ in range(3):
        for data in sent:
            for close in (reset_close, socket.socket.close):
                sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
                sock.sendall(data)
                close(sock)
    time.sleep(1)  # for the server's threads to meet the closed connections
    assert server.predict(good)[0] == 200
    terminal = "".join(server.lines[before:])
    assert "Traceback" not in terminal and "Error" not in terminal, terminal


def test_malformed_json_and_queries_get_a_400_not_a_500(server):
    """Issue 5: deep nesting (RecursionError), a 5,000-digit number (Python's int digit limit), index=--1 and
    a 5,000-digit Content-Length were answered 500."""
    good = seven(280, 90, 40, 60)
    digits = "1" * 5000
    cases = [("POST", "/api/predict", "[" * 100_000, None, 400, "nested too deeply"),
             ("POST", "/api/predict", '{"a": ' * 50_000 + "1" + "}" * 50_000, None, 400, "nested too deeply"),
             ("POST", "/api/predict", '{"width": ' + digits + "}", None, 400, "over 4300 digits"),
             ("POST", "/api/predict", json.dumps({"width": 280, "height": 280})[:-1] + ', "pixels": [' + digits
              + "]}", None, 400, "over 4300 digits"),
             ("POST", "/api/predict", None, {"Content-Length": "9" * 5000}, 413, "the limit is"),
             ("GET", "/api/test-image?index=--1", None, None, 400, "whole number"),
             ("GET", "/api/test-image?index=1-2", None, None, 400, "whole number"),
             ("GET", "/api/test-image?index=" + digits, None, None, 400, "whole number")]
    for method, path, body, headers, status, words in cases:
        got, answer = server.request(method, path, body, headers)
        assert (got, set(answer), words in answer["error"]) == (status, {"error"}, True), (path[:40], answer)
        assert server.predict(good)[0] == 200


def test_a_body_shorter_than_its_content_length_gets_a_408_within_seconds(server):
    """Issue 5: the handler waited its 30 s socket timeout for the missing bytes, holding a thread, then
    answered 500."""
    head = b"POST /api/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        started = time.monotonic()
        sock.sendall(head + b"{}")  # 98 bytes short, and the connection left open
        status, answer = raw_response(sock)
        took = time.monotonic() - started
    assert (status, set(answer)) == (408, {"error"}) and "stopped coming" in answer["error"], answer
    assert took < 15, f"the 408 took {took:.1f} s"  # BODY_TIMEOUT is 5 s; it took the handler's 30 s
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(head + b"{}")
        sock.shutdown(socket.SHUT_WR)  # the client says it has sent all it will: told at once, not in 5 s
        status, answer = raw_response(sock)
    assert status == 400 and "ended after 2 of its 100 bytes" in answer["error"], answer
    assert server.predict(seven(280, 90, 40, 60))[0] == 200


def test_the_server_holds_a_classroom_of_connections_waiting_to_be_accepted():
    """Issue 6: a listen backlog of 5 (socketserver's default) turned away the connections of 50 clients at once."""
    srv = draw_server.serve("127.0.0.1", 0, draw_server.App([]))
    socks, serving = [], False
    try:
        assert srv.request_queue_size >= 128 and srv.daemon_threads
        # 50 connections before the server accepts any: the kernel completes a handshake only while the
        # backlog has room for it, and drops the others' SYNs (their retries too, while nothing is accepted)
        for _ in range(50):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(srv.server_address)
            socks.append(sock)
        waiting, deadline = set(socks), time.monotonic() + 10
        while waiting and time.monotonic() < deadline:
            for sock in select.select([], list(waiting), [], 0.1)[1]:
                assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
                waiting.discard(sock)
        assert not waiting, f"{len(waiting)} of 50 connections were not taken in"
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        serving = True
        for sock in socks:
            sock.settimeout(30)
            sock.sendall(b"GET /api/models HTTP/1.0\r\n\r\n")
        assert [raw_response(sock) for sock in socks] == [(200, {"models": []})] * 50
    finally:
        for sock in socks:
            sock.close()
        if serving:
            srv.shutdown()
        srv.server_close()


def test_fifty_clients_at_once_all_get_their_answers(server):
    """Issue 6: with 50 clients some connections were reset (half of these 150 with the backlog of 5)."""
    body = predict_body(seven(280, 90, 40, 60))
    start, statuses, errors = threading.Barrier(50), [], []

    def client():
        start.wait(timeout=60)  # all at once, as a class told "now draw a 7"
        for _ in range(3):
            try:
                statuses.append(server.request("POST", "/api/predict", body)[0])
            except OSError as e:
                errors.append(repr(e))

    before = len(server.lines)
    threads = [threading.Thread(target=client, daemon=True) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "the clients did not finish in 120 s"
    assert (len(errors), errors[:3]) == (0, []) and statuses == [200] * 150
    assert "Traceback" not in "".join(server.lines[before:])


# --- the page in a real browser ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("no Chromium here: `apt-get install chromium` (.ci/run does) to run the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright not installed: pip install -e '.[test]'")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser, url):
    """The page, loaded, with every URL it requests kept in page.requested."""
    page = browser.new_page(viewport={"width": 1320, "height": 900})
    page.requested = []
    page.on("request", lambda request: page.requested.append(request.url))
    page.goto(url)
    page.wait_for_selector(".card")
    page.wait_for_selector(".card.loading", state="detached", timeout=60_000)
    return page


def draw_on_pad(page, *strokes):
    """Mouse strokes on the canvas, in canvas pixels; returns once the page shows the answer to the last."""
    box = page.locator("#pad").bounding_box()
    for points in strokes:
        page.mouse.move(box["x"] + points[0][0], box["y"] + points[0][1])
        page.mouse.down()
        for x, y in points[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=12)
        page.mouse.up()
    page.wait_for_selector("body[data-busy='0']")


def canvas_pixels(page, selector):
    """The red channel (= grey) of a canvas on the page, as a (H, W) uint8 array."""
    width, height, red = page.evaluate("""(selector) => {
        const canvas = document.querySelector(selector);
        const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
        return [canvas.width, canvas.height, Array.from(rgba.filter((_, i) => i % 4 === 0))];
    }""", selector)
    return np.array(red, dtype=np.uint8).reshape(height, width)


def shown_predictions(page):
    return {card.get_attribute("data-model"): card.locator(".digit").text_content()
            for card in page.locator(".card").all()}


SEVEN_STROKES = [[(80, 60), (200, 60), (120, 230)], [(110, 150), (180, 150)]]


def test_a_drawn_digit_gets_the_python_prediction_for_the_same_28x28_image(browser, server, checkpoints):
    page = open_page(browser, server.url)
    draw_on_pad(page, *SEVEN_STROKES)
    image = preprocess(canvas_pixels(page, "#pad") / 255.0)
    expected = reference_logits(checkpoints, image)
    assert shown_predictions(page) == {name: str(logits.argmax()) for name, logits in expected.items()}
    shown_image = canvas_pixels(page, "#input28").astype(int)
    assert np.abs(shown_image - np.round(image * 255)).max() <= 1
    assert len(page.locator("#maps1 canvas").all()) == 16 and len(page.locator("#maps2 canvas").all()) == 32
    assert page.locator("#note").text_content() == "your drawing"
    assert page.requested and all(url.startswith(server.url) for url in page.requested)  # nothing from elsewhere
    page.close()


def test_an_empty_canvas_shows_draw_a_digit_and_no_prediction(browser, server):
    page = open_page(browser, server.url)
    nothing = {name: "–" for name in MODELS}
    assert page.locator("#note").text_content() == "draw a digit" and shown_predictions(page) == nothing
    draw_on_pad(page, [(140, 140)])  # one click: a dot, not a digit
    assert page.locator("#note").text_content() == "draw a digit" and shown_predictions(page) == nothing
    draw_on_pad(page, *SEVEN_STROKES)
    assert shown_predictions(page) != nothing
    page.click("#clear")
    page.wait_for_selector("body[data-busy='0']")
    assert page.locator("#note").text_content() == "draw a digit" and shown_predictions(page) == nothing
    assert not canvas_pixels(page, "#pad").any() and not canvas_pixels(page, "#input28").any()
    page.close()


def test_a_test_image_shows_its_true_label_and_the_python_prediction(browser, server, checkpoints, mnist_dir):
    images, labels = load_mnist("test", mnist_dir, download=False)
    page = open_page(browser, server.url)
    page.click("#test-image")
    page.wait_for_selector("body[data-busy='0']")
    note = page.locator("#note").text_content()  # "MNIST test image #123: true label 7"
    index, label = int(note.split("#")[1].split(":")[0]), int(note.rsplit(" ", 1)[1])
    assert label == labels[index]
    expected = reference_logits(checkpoints, images[index])
    assert shown_predictions(page) == {name: str(logits.argmax()) for name, logits in expected.items()}
    assert np.abs(canvas_pixels(page, "#input28").astype(int) - np.round(images[index] * 255)).max() <= 1
    page.close()


def test_a_missing_model_is_shown_with_the_command_that_makes_it(browser, checkpoints, tmp_path):
    for name in ("nn_numpy", "nn_torch", "cnn_numpy"):
        shutil.copy(next(checkpoints.glob(f"{name}.*")), tmp_path)
    s = DrawServer("--checkpoint-dir", tmp_path)
    try:
        page = open_page(browser, s.url)
        card = page.locator(".card[data-model='cnn_torch']")
        assert card.get_attribute("data-status") == "missing"
        assert "make it with: python cnn_torch.py" in card.text_content()
        draw_on_pad(page, *SEVEN_STROKES)
        shown = shown_predictions(page)
        assert shown["cnn_torch"] == "–" and all(shown[name].isdigit() for name in ("nn_numpy", "nn_torch", "cnn_numpy"))
        page.close()
    finally:
        s.close()
