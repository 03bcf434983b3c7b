// The page's only script: it draws, sends the canvas's grey levels to draw.py and shows what comes back.
// All preprocessing and inference happens in Python, in the kit's own code; nothing here computes a model.
"use strict";

const STROKE = 22;      // pixels on the 280-pixel canvas: MNIST's 2-3 pixel strokes at 28x28, times ten
const DEBOUNCE = 120;   // ms of drawing without a new prediction request

const pad = document.getElementById("pad");
const pen = pad.getContext("2d", { willReadFrequently: true });
const note = document.getElementById("note");
let drawing = false, last = null, timer = null, latest = 0, empty = true, models = [];
let current = null;  // the index of the MNIST test image on view, null for a drawing

function clearPad() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, pad.width, pad.height);
  empty = true;
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

function stroke(from, to) {
  Object.assign(pen, { strokeStyle: "#fff", lineWidth: STROKE, lineCap: "round", lineJoin: "round" });
  pen.beginPath();
  pen.moveTo(...from);
  pen.lineTo(...to);
  pen.stroke();
  empty = false;
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  last = point(event);
  stroke(last, last);
  current = null;
  say("your drawing");
  schedule();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const next = point(event);
  stroke(last, next);
  last = next;
  schedule();
});
for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => { if (drawing) { drawing = false; predict(); } });
}

function schedule() {
  clearTimeout(timer);
  timer = setTimeout(predict, DEBOUNCE);
}

function greyBase64() {
  const rgba = pen.getImageData(0, 0, pad.width, pad.height).data;
  let text = "";
  for (let i = 0; i < rgba.length; i += 4 * 8192) {  // fromCharCode takes a bounded number of arguments
    const chunk = new Uint8Array(Math.min(8192, (rgba.length - i) / 4));
    for (let j = 0; j < chunk.length; j++) chunk[j] = rgba[i + 4 * j];  // red = grey: white ink on black
    text += String.fromCharCode(...chunk);
  }
  return btoa(text);
}

function predict() {
  clearTimeout(timer);
  request("/api/predict", { method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ width: pad.width, height: pad.height, pixels: greyBase64() }) });
}

async function request(url, options) {
  const ticket = ++latest;  // answers that arrive after a newer request was sent are dropped
  document.body.dataset.busy = "1";
  try {
    const response = await fetch(url, options);
    const answer = await response.json();
    if (ticket !== latest) return;
    if (!response.ok) throw new Error(answer.error || response.statusText);
    show(answer);
  } catch (error) {
    if (ticket === latest) say(error.message, true);
  } finally {
    if (ticket === latest) document.body.dataset.busy = "0";  // what the page shows is the latest answer
  }
}

function say(text, isError = false) {
  note.textContent = text;
  note.classList.toggle("error", isError);
}

function show(answer) {
  if (answer.label !== undefined) {
    current = answer.index;
    paintTestImage(answer.image);
    say(`MNIST test image #${answer.index}: true label ${answer.label}`);
  } else if (answer.status === "empty") {
    say(answer.message);
  }
  models = answer.models;
  paint(document.getElementById("input28"), answer.image || null, 28, 28, 1);
  renderModels(answer.models);
  renderMaps(answer.feature_maps);
  document.getElementById("timing").textContent = answer.milliseconds === undefined ? ""
    : `${answer.models.filter((m) => m.probabilities).length} models answered in ${answer.milliseconds} ms (server time, preprocessing included)`;
}

function paint(canvas, rows, height, width, scale) {
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext("2d");
  const image = context.createImageData(width, height);
  for (let k = 0; k < width * height; k++) {
    const v = rows ? Math.round(255 * Math.min(1, rows[Math.floor(k / width)][k % width] / scale)) : 0;
    image.data.set([v, v, v, 255], 4 * k);
  }
  context.putImageData(image, 0, 0);
}

function paintTestImage(rows) {
  const small = document.createElement("canvas");
  paint(small, rows, 28, 28, 1);
  clearPad();
  pen.imageSmoothingEnabled = false;  // the test image's own pixels, enlarged
  pen.drawImage(small, 0, 0, pad.width, pad.height);
  empty = false;
}

function renderModels(list) {
  const box = document.getElementById("models");
  box.replaceChildren(...list.map((model) => {
    const card = element("div", `card ${model.status}`);
    card.dataset.model = model.name;
    card.dataset.status = model.status;
    const digit = element("div", "digit", model.prediction === undefined ? "–" : String(model.prediction));
    digit.dataset.prediction = model.prediction === undefined ? "" : model.prediction;
    card.append(element("h3", "", model.title), digit);
    for (let d = 0; d < 10; d++) {
      const p = model.probabilities ? model.probabilities[d] : 0;
      const row = element("div", d === model.prediction ? "bar top" : "bar");
      const fill = element("i");
      fill.style.width = `${100 * p}%`;
      const span = element("span");
      span.append(fill);
      row.append(element("span", "", String(d)), span, element("span", "p", model.probabilities ? percent(p) : ""));
      card.append(row);
    }
    const where = model.status === "ready" ? model.source : model.status === "loading" ? `loading ${model.source}…` : model.message;
    card.append(element("p", "source", where));
    return card;
  }));
}

function percent(p) {
  return p >= 0.9995 || p < 0.0005 ? `${(100 * p).toFixed(2)}%` : `${(100 * p).toFixed(1)}%`;
}

function renderMaps(maps) {
  for (const [stage, id] of [["conv1", "maps1"], ["conv2", "maps2"]]) {
    const stack = maps ? maps[stage] : [];
    const top = Math.max(1e-9, ...stack.flat(2));  // one scale per stage: weak maps look weak
    document.getElementById(id).replaceChildren(...stack.map((rows) => {
      const canvas = element("canvas");
      paint(canvas, rows, rows.length, rows[0].length, top);
      return canvas;
    }));
  }
  document.getElementById("maps-note").textContent = maps ? "Brighter = stronger activation, on one scale per stage."
    : models.some((m) => m.name === "cnn_numpy" && m.status === "ready") ? "Draw a digit to see the maps."
    : "The NumPy CNN is not loaded: see its card above.";
}

function element(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}

async function refreshModels() {  // until PyTorch has loaded its two models in the background
  const answer = await (await fetch("/api/models")).json();
  const loading = answer.models.some((m) => m.status === "loading");
  if (loading) setTimeout(refreshModels, 500);
  if (empty) {
    models = answer.models;
    renderModels(models);
    renderMaps(null);
  } else if (!loading) {
    current === null ? predict() : request(`/api/test-image?index=${current}`);
  }
}

document.getElementById("clear").addEventListener("click", () => {
  clearPad();
  current = null;
  say("draw a digit");
  predict();
});
document.getElementById("test-image").addEventListener("click", () => request("/api/test-image"));

clearPad();
refreshModels();
