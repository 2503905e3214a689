"use strict";
// The drawing page: strokes on a canvas, sent as a PNG to /api/predict after each pause (debounced).

const $ = (id) => document.getElementById(id);
const pad = $("pad");
const ctx = pad.getContext("2d");
const SIZE = { single: [280, 280], multi: [960, 320] }; // canvas pixels; CSS scales them to the screen
const TOPK = 5;
const WHILE_DRAWING_MS = 250; // a pause this long while drawing reads what is there so far
const AFTER_STROKE_MS = 80;

let strokes = []; // each stroke is a list of [x, y] canvas pixels; Undo drops the last
let current = null; // the stroke under the pointer
let photo = null; // {file, bitmap}: an uploaded photo, read as the original file until drawn on
let info = null;
let timer = null;
let seq = 0; // only the newest request's answer is shown
let inflight = null;

const isMulti = () => $("multi").checked;
const pct = (p) => `${(100 * p).toFixed(1)}%`;

// ---- drawing ----

function pen() {
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = pad.height / 16; // about MNIST's stroke for a character as tall as the pad
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

function redraw() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, pad.width, pad.height);
  if (photo && photo.bitmap) {
    const b = photo.bitmap;
    const s = Math.min(pad.width / b.width, pad.height / b.height);
    ctx.drawImage(b, (pad.width - s * b.width) / 2, (pad.height - s * b.height) / 2, s * b.width, s * b.height);
  }
  pen();
  for (const s of strokes) {
    ctx.beginPath();
    ctx.moveTo(...s[0]);
    for (const p of s) ctx.lineTo(...p);
    ctx.stroke();
    if (s.length === 1) dot(s[0]);
  }
}

function dot([x, y]) {
  ctx.beginPath();
  ctx.arc(x, y, ctx.lineWidth / 2, 0, 2 * Math.PI);
  ctx.fill();
}

function segment(a, b) {
  ctx.beginPath();
  ctx.moveTo(...a);
  ctx.lineTo(...b);
  ctx.stroke();
}

function point(e) {
  const r = pad.getBoundingClientRect();
  return [((e.clientX - r.left) * pad.width) / r.width, ((e.clientY - r.top) * pad.height) / r.height];
}

pad.addEventListener("pointerdown", (e) => {
  if (current || (e.pointerType === "mouse" && e.button !== 0)) return; // one pointer, left button
  e.preventDefault();
  pad.setPointerCapture(e.pointerId);
  current = { id: e.pointerId, points: [point(e)] };
  strokes.push(current.points);
  pen();
  dot(current.points[0]);
  changed(WHILE_DRAWING_MS);
});

pad.addEventListener("pointermove", (e) => {
  if (!current || e.pointerId !== current.id) return;
  const events = (e.getCoalescedEvents && e.getCoalescedEvents()) || [];
  for (const ev of events.length ? events : [e]) {
    const p = point(ev);
    segment(current.points[current.points.length - 1], p);
    current.points.push(p);
  }
  changed(WHILE_DRAWING_MS);
});

function endStroke(e) {
  if (!current || e.pointerId !== current.id) return;
  current = null;
  changed(AFTER_STROKE_MS);
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);

function undo() {
  if (current) return;
  if (strokes.length) strokes.pop();
  else photo = null;
  redraw();
  changed(0);
}

function clear() {
  strokes = [];
  current = null;
  photo = null;
  redraw();
  changed(0);
}

$("undo").addEventListener("click", undo);
$("clear").addEventListener("click", clear);
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && e.key === "z") { e.preventDefault(); undo(); }
  else if (e.key === "Escape") clear();
});

function setMode() {
  [pad.width, pad.height] = SIZE[isMulti() ? "multi" : "single"];
  strokes = []; // their places meant something on the old pad, not on this one
  document.body.classList.toggle("multi", isMulti());
  redraw();
  hint();
}
$("multi").addEventListener("change", () => {
  setMode();
  changed(0);
});

$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  $("file").value = ""; // choosing the same file again reads it again
  if (!file) return;
  let bitmap = null;
  try { bitmap = await createImageBitmap(file); } catch (err) { /* the server says what is wrong with it */ }
  strokes = [];
  photo = { file, bitmap };
  redraw();
  changed(0);
});

// ---- reading ----

function changed(delay) {
  clearTimeout(timer);
  outline(null);
  seq++; // whatever is in flight now answers for an older drawing
  if (!strokes.length && !photo) return show(null);
  setState("pending");
  timer = setTimeout(predict, delay);
}

async function predict() {
  const id = seq;
  if (inflight) inflight.abort();
  inflight = new AbortController();
  const url = `/api/predict?topk=${TOPK}&multi=${isMulti()}`;
  try {
    let body;
    let from = null; // the photo read, or null for the pad's own pixels
    const headers = {};
    if (photo && !strokes.length) {
      body = new FormData(); // the original file, at full resolution
      body.append("image", photo.file, photo.file.name);
      from = photo;
    } else {
      body = await new Promise((resolve) => pad.toBlob(resolve, "image/png"));
      headers["Content-Type"] = "image/png";
    }
    const res = await fetch(url, { method: "POST", body, headers, signal: inflight.signal });
    const data = await res.json().catch(() => ({ error: `${res.status} ${res.statusText}` }));
    if (id !== seq) return;
    if (!res.ok) return showError(data.error || `${res.status} ${res.statusText}`);
    show(data, from);
  } catch (err) {
    if (id !== seq || err.name === "AbortError") return;
    showError("no answer from the server: is python -m mnist_lit.serve still running?");
  }
}

function setState(state) {
  $("result").dataset.state = state;
}

function show(data, from = null) {
  $("error").textContent = "";
  outline(data && data.chars, from);
  $("top").replaceChildren();
  $("chars").replaceChildren();
  paint($("seen"), null);
  if (!data) {
    $("label").textContent = "";
    $("confidence").textContent = "";
    return setState("idle");
  }
  if (data.chars) {
    $("label").textContent = data.text;
    $("confidence").textContent = `${data.chars.length} character${data.chars.length === 1 ? "" : "s"}`;
    for (const c of data.chars) $("chars").append(charCard(c));
  } else {
    $("label").textContent = data.label;
    $("confidence").textContent = pct(data.confidence);
    for (const [label, p] of data.top) $("top").append(bar(label, p));
    paint($("seen"), data.image);
  }
  setState("done");
}

function showError(message) {
  show(null);
  $("error").textContent = message;
  setState("error");
}

function bar(label, p) {
  const li = document.createElement("li");
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = label;
  const track = document.createElement("span");
  track.className = "track";
  const fill = document.createElement("span");
  fill.style.width = pct(p);
  track.append(fill);
  const value = document.createElement("span");
  value.className = "value";
  value.textContent = pct(p);
  li.append(name, track, value);
  return li;
}

function charCard(c) {
  const fig = document.createElement("figure");
  fig.className = "char";
  fig.title = c.top.map(([label, p]) => `${label} ${pct(p)}`).join(", ");
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 28;
  paint(canvas, c.image);
  const cap = document.createElement("figcaption");
  const b = document.createElement("b");
  b.textContent = c.label;
  cap.append(b, ` ${pct(c.confidence)}`);
  fig.append(canvas, cap);
  return fig;
}

// Where each character was found, over the pad: boxes are in the pixels of the image read.
function outline(chars, from) {
  const boxes = $("boxes");
  [boxes.width, boxes.height] = [pad.width, pad.height]; // also clears it
  if (!chars) return;
  let [s, dx, dy] = [1, 0, 0];
  if (from) {
    if (!from.bitmap) return;
    const b = from.bitmap;
    s = Math.min(pad.width / b.width, pad.height / b.height);
    [dx, dy] = [(pad.width - s * b.width) / 2, (pad.height - s * b.height) / 2];
  }
  const g = boxes.getContext("2d");
  const px = pad.width / pad.getBoundingClientRect().width; // one screen pixel
  g.strokeStyle = "#2563eb";
  g.fillStyle = "#2563eb";
  g.lineWidth = 2 * px;
  g.font = `bold ${16 * px}px system-ui, sans-serif`;
  for (const c of chars) {
    const [x0, y0, x1, y1] = c.box;
    g.strokeRect(dx + s * x0, dy + s * y0, s * (x1 - x0), s * (y1 - y0));
    g.fillText(c.label, dx + s * x0, Math.max(dy + s * y0 - 4 * px, 16 * px));
  }
}

// The model's input, values in [0, 1] (ink is 1), shown as it sees it: white ink on black.
function paint(canvas, image) {
  const g = canvas.getContext("2d");
  if (!image) return g.clearRect(0, 0, canvas.width, canvas.height);
  const im = g.createImageData(image[0].length, image.length);
  image.flat().forEach((v, i) => {
    im.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i);
  });
  g.putImageData(im, 0, 0);
}

// ---- the model ----

function kind() {
  const classes = (info && info.classes) || [];
  if (classes.length && classes.every((c) => /^[0-9]$/.test(c))) return ["digit", "number"];
  if (classes.length && classes.every((c) => /^[a-z]$/i.test(c))) return ["letter", "word"];
  return ["character", "row of characters"];
}

function hint() {
  const [one, many] = kind();
  $("multi-label").textContent = `Read a whole ${many}`;
  $("hint").textContent = isMulti()
    ? `Write a ${many} in one line, its characters apart.`
    : `Draw one ${one} with a mouse, pen or finger.`;
}

async function loadInfo() {
  try {
    const res = await fetch("/api/info");
    info = await res.json();
  } catch (err) {
    $("model").textContent = "the server is not answering";
    return;
  }
  const acc = info.test_acc;
  const parts = [info.model && String(info.model).split(".").pop(), info.dataset && `trained on ${info.dataset}`,
    acc != null && `test accuracy ${pct(acc)}`, `${info.classes.length} classes`];
  $("model").textContent = parts.filter(Boolean).join(" · ");
  hint();
}

setMode(); // a reload may keep the checkbox ticked
loadInfo();
