// mxconv playground: plain JS, no build step, no CDN. Talks only to this server's /v1 API.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORAGE = "mxconv.apiKey";
const SMALL = 24; // show numbers for images up to this many pixels a side

const state = {
  presets: {},          // name -> {matrix, mapping, params, description}
  kernel: [[1, -1]],    // the matrix shown in the editor
  preset: "edge-horizontal",
  input: null,          // {blob, width, height, gray: Float32Array|null, name}
  applySeq: 0,
  job: null,            // {id, timer}
};

// ---- API access ----------------------------------------------------------------------

class AuthNeeded extends Error {}

function apiKey() { return sessionStorage.getItem(KEY_STORAGE) || ""; }

async function api(path, options = {}) {
  const headers = new Headers(options.headers || {});
  const key = apiKey();
  if (key) headers.set("Authorization", "Bearer " + key);
  const resp = await fetch(path, { ...options, headers });
  if (resp.status === 401) {
    showAuth(key ? "That key was refused; try another." : "");
    throw new AuthNeeded("this server needs an API key");
  }
  if (!resp.ok) {
    let message = resp.status + " " + resp.statusText;
    try {
      const body = await resp.json();
      if (body && body.error) message = body.error.message;
    } catch (_) { /* not JSON */ }
    const err = new Error(message);
    err.status = resp.status;
    throw err;
  }
  return resp;
}

function showAuth(message) {
  $("auth").hidden = false;
  $("auth-msg").textContent = message || "";
  $("api-key").focus();
}

function showError(err) {
  if (err instanceof AuthNeeded) return;
  const box = $("error");
  box.textContent = err && err.message ? err.message : String(err);
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 8000);
}

// ---- number formatting and tables ---------------------------------------------------

function fmt(v, digits) {
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return v.toFixed(digits || (a < 1 ? 3 : 2)).replace(/\.?0+$/, "") || "0";
}

function fillTable(table, rows, caption, digits) {
  table.replaceChildren();
  if (!rows) return;
  if (caption) table.createCaption().textContent = caption;
  for (const row of rows) {
    const tr = table.insertRow();
    for (const v of row) {
      const td = tr.insertCell();
      td.textContent = fmt(v, digits);
      if (v < 0) td.className = "neg";
    }
  }
}

// ---- images --------------------------------------------------------------------------

function seedPixels() {
  // The seed: X = nd.ones((6, 6)); X[:, 2:4] = 0, shown as white with a black stripe.
  const w = 6, h = 6, gray = new Float32Array(w * h);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) gray[i * w + j] = j >= 2 && j < 4 ? 0 : 1;
  return { w, h, gray };
}

function checkerPixels() {
  const w = 16, h = 16, gray = new Float32Array(w * h);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) gray[i * w + j] = ((i >> 2) + (j >> 2)) % 2;
  return { w, h, gray };
}

function gradientPixels() {
  const w = 64, h = 48, gray = new Float32Array(w * h);
  for (let i = 0; i < h; i++) for (let j = 0; j < w; j++) {
    const r = Math.hypot(i - h / 2, j - w / 2);
    gray[i * w + j] = r < 14 ? 1 : (j / (w - 1)) * 0.8;
  }
  return { w, h, gray };
}

function fitCanvas(canvas, w, h) {
  canvas.width = w;
  canvas.height = h;
  // Scale tiny images up by a whole factor (crisp pixels), large ones down to fit.
  const box = 320;
  const scale = Math.max(w, h) <= box ? Math.max(1, Math.floor(box / Math.max(w, h))) : box / Math.max(w, h);
  canvas.style.width = Math.round(w * scale) + "px";
  canvas.style.height = Math.round(h * scale) + "px";
}

async function setGrayInput(name, { w, h, gray }) {
  const canvas = $("input-canvas");
  fitCanvas(canvas, w, h);
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(w, h);
  for (let p = 0; p < w * h; p++) {
    const v = Math.round(gray[p] * 255);
    data.data.set([v, v, v, 255], p * 4);
  }
  ctx.putImageData(data, 0, 0);
  const blob = await new Promise((ok) => canvas.toBlob(ok, "image/png"));
  state.input = { blob, width: w, height: h, gray, name };
  describeInput();
}

async function setFileInput(file) {
  const bitmap = await createImageBitmap(file, { colorSpaceConversion: "none" });
  const canvas = $("input-canvas");
  fitCanvas(canvas, bitmap.width, bitmap.height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(bitmap, 0, 0);
  const rgba = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const gray = new Float32Array(bitmap.width * bitmap.height);
  for (let p = 0; p < gray.length; p++) {
    gray[p] = (0.299 * rgba[p * 4] + 0.587 * rgba[p * 4 + 1] + 0.114 * rgba[p * 4 + 2]) / 255;
  }
  state.input = { blob: file, width: bitmap.width, height: bitmap.height, gray, name: file.name };
  describeInput();
}

function describeInput() {
  const { width, height, gray, name } = state.input;
  $("input-info").textContent = `${name}: ${width}×${height} px`;
  if (width <= SMALL && height <= SMALL) {
    const rows = [];
    for (let i = 0; i < height; i++) rows.push(Array.from(gray.subarray(i * width, (i + 1) * width)));
    fillTable($("input-values"), rows, "values (0–1)");
  } else {
    fillTable($("input-values"), null);
  }
}

async function loadSource() {
  const source = $("source").value;
  if (source === "upload") { $("file").click(); return; }
  const make = { seed: seedPixels, checker: checkerPixels, gradient: gradientPixels }[source];
  const names = { seed: "seed 6x6 stripe", checker: "checkerboard", gradient: "gradient" };
  await setGrayInput(names[source], make());
  scheduleApply();
}

// ---- kernel editor -------------------------------------------------------------------

function renderMatrix() {
  const box = $("matrix");
  box.replaceChildren();
  const rows = state.kernel.length, cols = state.kernel[0].length;
  box.style.gridTemplateColumns = `repeat(${cols}, auto)`;
  state.kernel.forEach((row, i) => row.forEach((v, j) => {
    const input = document.createElement("input");
    input.type = "number";
    input.step = "any";
    input.value = fmt(v);
    input.dataset.i = i;
    input.dataset.j = j;
    input.title = `k[${i}][${j}]`;
    if (v < 0) input.className = "neg";
    input.addEventListener("input", () => {
      const n = Number(input.value);
      if (input.value === "" || !Number.isFinite(n)) return;
      state.kernel[i][j] = n;
      input.className = n < 0 ? "neg" : "";
      setPreset("custom");
      scheduleApply();
    });
    box.appendChild(input);
  }));
  fillTable($("target-kernel"), state.kernel);
  box.dataset.shape = `${rows}x${cols}`;
}

function resizeMatrix(axis, delta) {
  const k = state.kernel;
  if (axis === "row") {
    if (delta > 0 && k.length < 15) k.push(new Array(k[0].length).fill(0));
    if (delta < 0 && k.length > 1) k.pop();
  } else {
    if (delta > 0 && k[0].length < 15) k.forEach((r) => r.push(0));
    if (delta < 0 && k[0].length > 1) k.forEach((r) => r.pop());
  }
  setPreset("custom");
  renderMatrix();
  scheduleApply();
}

function setPreset(name) {
  state.preset = name;
  $("preset").value = name;
  const preset = state.presets[name];
  $("preset-desc").textContent = preset ? preset.description : "Your own matrix, cross-correlated with each channel.";
  $("size-row").hidden = !(preset && preset.params.includes("size"));
  $("sigma-row").hidden = !(preset && preset.params.includes("sigma"));
}

async function choosePreset(name) {
  setPreset(name);
  if (name === "custom") return;
  const preset = state.presets[name];
  const params = new URLSearchParams();
  if (preset.params.includes("size") && $("size").value) params.set("size", $("size").value);
  if (preset.params.includes("sigma") && $("sigma").value) params.set("sigma", $("sigma").value);
  const resp = await api(`/v1/kernels/${encodeURIComponent(name)}?${params}`, { headers: { Accept: "application/json" } });
  state.kernel = (await resp.json()).matrix;
  renderMatrix();
  await apply();
}

async function loadPresets() {
  const resp = await api("/v1/kernels", { headers: { Accept: "application/json" } });
  const body = await resp.json();
  const select = $("preset");
  select.replaceChildren();
  for (const p of body.presets) {
    state.presets[p.name] = p;
    select.add(new Option(p.name, p.name));
  }
  select.add(new Option("custom", "custom"));
  $("auth").hidden = true;
}

// ---- filtering -----------------------------------------------------------------------

function filterParams() {
  const params = new URLSearchParams();
  params.set("kernel", state.preset === "custom" ? JSON.stringify(state.kernel) : state.preset);
  const preset = state.presets[state.preset];
  if (preset && preset.params.includes("size") && $("size").value) params.set("size", $("size").value);
  if (preset && preset.params.includes("sigma") && $("sigma").value) params.set("sigma", $("sigma").value);
  params.set("padding", $("padding").value);
  params.set("padding_mode", $("padding-mode").value);
  params.set("stride", $("stride").value || "1");
  if ($("mapping").value) params.set("mapping", $("mapping").value);
  if ($("grayscale").checked) params.set("grayscale", "true");
  return params;
}

let applyTimer = null;
function scheduleApply() {
  clearTimeout(applyTimer);
  applyTimer = setTimeout(() => apply().catch(showError), 120);
}

async function apply() {
  if (!state.input) return;
  const seq = ++state.applySeq;
  const out = $("output-canvas");
  out.dataset.state = "busy";
  $("output-status").textContent = "filtering…";
  const params = filterParams();
  const url = `/v1/images/filter?${params}`;
  const body = state.input.blob;
  const type = body.type === "image/jpeg" ? "image/jpeg" : "image/png";
  const small = state.input.width <= SMALL && state.input.height <= SMALL;
  try {
    const started = performance.now();
    const [png, values] = await Promise.all([
      api(url, { method: "POST", body, headers: { "Content-Type": type, Accept: "image/png" } }).then((r) => r.blob()),
      small
        ? api(url, { method: "POST", body, headers: { "Content-Type": type, Accept: "application/json" } }).then((r) => r.json())
        : Promise.resolve(null),
    ]);
    if (seq !== state.applySeq) return; // a newer request has started
    const bitmap = await createImageBitmap(png, { colorSpaceConversion: "none", premultiplyAlpha: "none" });
    fitCanvas(out, bitmap.width, bitmap.height);
    const ctx = out.getContext("2d", { willReadFrequently: true });
    ctx.clearRect(0, 0, bitmap.width, bitmap.height);
    ctx.drawImage(bitmap, 0, 0);
    const ms = Math.round(performance.now() - started);
    $("output-info").textContent = `${bitmap.width}×${bitmap.height} px, ${params.get("kernel")}, ` +
      `padding ${params.get("padding")} (${params.get("padding_mode")}), stride ${params.get("stride")} · ${ms} ms`;
    if (values) {
      const gray = values.shape.length === 2 || values.y.every((r) => r.every((px) => px.every((v) => v === px[0])));
      const rows = values.shape.length === 2 ? values.y : values.y.map((r) => r.map((px) => px[0]));
      fillTable($("output-values"), rows, gray ? "values, before mapping to 0–255" : "values of the first channel");
    } else {
      fillTable($("output-values"), null);
    }
    $("output-status").textContent = "done";
    out.dataset.kernel = params.get("kernel");
    out.dataset.seq = String(seq);
    out.dataset.state = "done";
  } catch (err) {
    if (seq !== state.applySeq) return;
    // Nothing of an earlier answer may stay under the "failed" label.
    out.getContext("2d").clearRect(0, 0, out.width, out.height);
    $("output-info").textContent = "";
    fillTable($("output-values"), null);
    out.dataset.state = "error";
    $("output-status").textContent = "failed";
    throw err;
  }
}

// ---- learning ------------------------------------------------------------------------

function setJobStatus(text, status) {
  const el = $("job-status");
  el.textContent = text;
  el.dataset.status = status || "";
}

function drawLoss(history, epochs) {
  const canvas = $("loss-canvas");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 56, R = 12, T = 12, B = 30;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#6a7282";
  ctx.strokeStyle = "#dde1e8";
  ctx.strokeRect(L, T, W - L - R, H - T - B);
  if (!history || history.length === 0) {
    ctx.fillText("the loss curve appears here", L + 10, T + 20);
    return;
  }
  // The axis follows the losses down as far as they go (a float64 loss can reach 1e-300);
  // a loss of exactly 0 is drawn on the bottom line.
  const pos = history.filter((v) => v > 0);
  const lo = pos.length ? Math.log10(Math.min(...pos, 1)) : 0;
  const hi = pos.length ? Math.log10(Math.max(...pos)) : 0;
  const top = Math.ceil(hi + 1e-9), bottom = Math.min(Math.floor(lo), top - 1);
  const n = Math.max(epochs || history.length, 2);
  const x = (i) => L + ((W - L - R) * i) / (n - 1);
  const y = (v) => T + ((H - T - B) * (top - Math.max(v > 0 ? Math.log10(v) : bottom, bottom))) / (top - bottom);
  canvas.dataset.axis = `${bottom},${top}`; // the decades shown, for the page tests
  const every = Math.max(1, Math.ceil((top - bottom) / 8)); // at most ~8 labelled decades
  for (let d = bottom; d <= top; d += every) {
    ctx.fillText(`1e${d}`, 8, y(10 ** d) + 4);
    ctx.beginPath();
    ctx.moveTo(L, y(10 ** d));
    ctx.lineTo(W - R, y(10 ** d));
    ctx.stroke();
  }
  ctx.fillText("epoch", W - R - 30, H - 8);
  ctx.fillText("0", L, H - 12);
  ctx.fillText(String(n), W - R - 20, H - 18);
  ctx.strokeStyle = "#2f6fdf";
  ctx.lineWidth = 2;
  ctx.beginPath();
  history.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.stroke();
  ctx.lineWidth = 1;
}

async function targetFor(kernel) {
  // Y = X cross-correlated with the kernel, valid padding, computed by the service itself.
  const { width, height, gray } = state.input;
  const x = [];
  for (let i = 0; i < height; i++) x.push(Array.from(gray.subarray(i * width, (i + 1) * width)));
  const resp = await api("/v1/conv2d", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ x, weight: kernel }),
  });
  return { x, y: (await resp.json()).y };
}

async function startLearning() {
  if (!state.input) return;
  if (state.input.width * state.input.height > 256 * 256) {
    throw new Error("learning sends the whole image as one sample: pick one of at most 256×256 pixels");
  }
  stopPolling();
  const kernel = state.kernel.map((r) => r.slice());
  fillTable($("target-kernel"), kernel);
  fillTable($("learned-kernel"), null);
  $("learned-bias").textContent = "";
  $("learned-error").textContent = "";
  drawLoss([], 0);
  setJobStatus("preparing…", "preparing");
  const { x, y } = await targetFor(kernel);
  const spec = jobSpec(x, y, kernel);
  const resp = await api("/v1/jobs", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(spec),
  });
  const job = await resp.json();
  state.job = { id: job.id, epochs: spec.epochs, target: kernel, timer: null };
  $("cancel").hidden = false;
  $("learn").disabled = true;
  showJob(job);
  poll();
}

function jobSpec(x, y, kernel) {
  return {
    x: [[x]],
    y: [[y]],
    layer: {
      in_channels: 1,
      out_channels: 1,
      kernel_size: [kernel.length, kernel[0].length],
      bias: true,
    },
    optimizer: $("optimizer").value,
    learning_rate: Number($("lr").value),
    epochs: Number($("epochs").value),
    seed: Number($("seed").value),
    name: "playground: learn " + JSON.stringify(kernel),
  };
}

function showJob(job) {
  const p = job.progress || {};
  const epochs = p.epochs || (state.job && state.job.epochs);
  const loss = p.loss ?? (job.result && job.result.final_loss);
  const parts = [`job ${job.id.slice(0, 8)}: ${job.status}`];
  if (p.epoch != null) parts.push(`epoch ${p.epoch}/${epochs}`);
  if (loss != null) parts.push(`loss ${fmt(loss)}`);
  if (job.error) parts.push(job.error);
  else if (job.message) parts.push(job.message);
  setJobStatus(parts.join(" · "), job.status);
  drawLoss(job.loss_history || [], epochs);
  // While a small layer trains, progress carries its current weight; the result, the final one.
  const weight = (job.result && job.result.weight) || (job.progress && job.progress.weight);
  if (weight) {
    const w = unwrap2d(weight);
    fillTable($("learned-kernel"), w, null, 4);
    $("learned-kernel").dataset.kernel = JSON.stringify(w);
    const target = state.job && state.job.target;
    if (target && target.length === w.length && target[0].length === w[0].length) {
      const err = Math.max(...w.flatMap((row, i) => row.map((v, j) => Math.abs(v - target[i][j]))));
      $("learned-error").textContent = `largest difference from the target: ${fmt(err)}`;
    }
  }
  if (!weight && !FINISHED.has(job.status)) {
    $("learned-error").textContent = "the learned kernel appears after the first epochs";
  }
  const bias = (job.result && job.result.bias) ?? (job.progress && job.progress.bias);
  if (bias != null) $("learned-bias").textContent = `bias ${fmt(Array.isArray(bias) ? bias[0] : bias)}`;
}

function unwrap2d(t) {
  while (Array.isArray(t) && Array.isArray(t[0]) && Array.isArray(t[0][0])) t = t[0];
  return t;
}

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

function stopPolling() {
  if (state.job && state.job.timer) clearTimeout(state.job.timer);
}

async function poll() {
  const job = state.job;
  if (!job) return;
  try {
    const resp = await api(`/v1/jobs/${job.id}`, { headers: { Accept: "application/json" } });
    const record = await resp.json();
    if (state.job !== job) return;
    showJob(record);
    if (FINISHED.has(record.status)) {
      $("cancel").hidden = true;
      $("learn").disabled = false;
      return;
    }
  } catch (err) {
    showError(err);
  }
  job.timer = setTimeout(poll, 300);
}

async function cancelJob() {
  if (!state.job) return;
  await api(`/v1/jobs/${state.job.id}/cancel`, { method: "POST", headers: { Accept: "application/json" } });
}

// ---- wiring --------------------------------------------------------------------------

function wire() {
  $("source").addEventListener("change", () => loadSource().catch(showError));
  $("file").addEventListener("change", () => {
    const file = $("file").files[0];
    if (file) setFileInput(file).then(scheduleApply).catch(showError);
  });
  $("preset").addEventListener("change", () => choosePreset($("preset").value).catch(showError));
  for (const id of ["size", "sigma"]) {
    $(id).addEventListener("change", () => choosePreset(state.preset).catch(showError));
  }
  for (const id of ["padding", "padding-mode", "stride", "mapping", "grayscale"]) {
    $(id).addEventListener("change", scheduleApply);
  }
  document.querySelectorAll("[data-resize]").forEach((b) => b.addEventListener("click", () => {
    const [axis, delta] = b.dataset.resize.split(",");
    resizeMatrix(axis, Number(delta));
  }));
  $("apply").addEventListener("click", () => apply().catch(showError));
  $("learn").addEventListener("click", () => startLearning().catch((e) => {
    setJobStatus(`could not start: ${e.message}`, "failed");
  }));
  $("cancel").addEventListener("click", () => cancelJob().catch(showError));
  $("auth").addEventListener("submit", (e) => {
    e.preventDefault();
    sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
    start().catch(showError);
  });
}

async function start() {
  await loadPresets();
  setPreset(state.preset);
  renderMatrix();
  drawLoss([], 0);
  if (!state.input) await setGrayInput("seed 6x6 stripe", seedPixels());
  await apply();
  document.body.dataset.ready = "true";
}

wire();
start().catch(showError);
