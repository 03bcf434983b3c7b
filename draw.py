"""Draw a digit and watch the four trained models answer, on a local page served by the kit itself.

    python draw.py                               # serves http://127.0.0.1:8000/ and opens it in the browser
    python draw.py --port 0 --no-browser         # any free port; the URL is printed
    python draw.py --checkpoint-dir /tmp/ck      # models from /tmp/ck/<model>.npz|.pt only

Models come from checkpoints/<model> (the scripts' default paths), else from the kit's reference/<model>;
a model with neither is shown as missing, with the command that trains it. The NumPy models are loaded
before the server starts; PyTorch (about 2 s to import) loads its two models in the background after.

The page (drawing/page/: index.html, app.js, style.css; no build step, nothing fetched from elsewhere) sends
the canvas's grey levels; the server prepares them as MNIST's digits were (drawing/preprocess.py) and runs
the kit's own models on the 28x28 result. The JSON API:

    GET  /api/models                 each model's status and the file it came from
    POST /api/predict                {"width": W, "height": H, "pixels": base64 of W*H grey bytes, ink bright}
                                     -> the 28x28 image, each model's 10 probabilities, the NumPy CNN's maps
    GET  /api/test-image[?index=N]   an MNIST test image (random without index), its label and the same

HEAD answers as GET without the body. Any other method, or POST where GET belongs, is a JSON 405 with an
Allow header (404 where the path does not exist); every refusal is JSON, and the server goes on serving.
"""

import sys

from common.cli import run_main
from drawing.server import main

if __name__ == "__main__":
    sys.exit(run_main(main, "draw.py"))
