// mxconv playground: train a small network as a job and draw its curves live.
// Uses playground.js's $, api, fmt, fillTable, showError and FINISHED.
"use strict";

const NET_DEFAULT = [
  { type: "conv2d", channels: 4, kernel_size: 3, padding: 1 },
  { type: "relu" },
  { type: "maxpool2d", pool_size: 2 },
  { type: "flatten" },
  { type: "dense", units: 3 },
];
const netState = { job: null };  // {id, epochs, timer}

function netRandom(seed) {
  // mulberry32: a small seeded generator, so the same seed draws the same data
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function stripesData(n, seed) {
  const rand = netRandom(seed + 1);
  const normal = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand());
  const x = [], y = [];
  for (let s = 0; s < n; s++) {
    const label = Math.floor(rand() * 3);
    const img = [];
    for (let i = 0; i < 8; i++) {
      const row = [];
      for (let j = 0; j < 8; j++) {
        const on = label === 0 ? i % 2 === 0 : label === 1 ? j % 2 === 0 : (i + j) % 2 === 0;
        row.push((on ? 1 : 0) + 0.3 * normal());
      }
      img.push(row);
    }
    x.push([img]);
    y.push(label);
  }
  return { x, y };
}

function drawCurves(canvasId, series, { logScale, lo, hi, label }) {
  // series: [{values, color}]; the x axis spans the job's epochs
  const canvas = $(canvasId);
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 48, R = 10, T = 10, B = 24;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#dde1e8";
  ctx.fillStyle = "#6a7282";
  ctx.strokeRect(L, T, W - L - R, H - T - B);
  ctx.fillText(label, 6, T + 10);
  const all = series.flatMap((s) => s.values).filter((v) => Number.isFinite(v) && (!logScale || v > 0));
  canvas.dataset.points = JSON.stringify(series.map((s) => s.values.length));
  if (!all.length) return;
  const f = logScale ? Math.log10 : (v) => v;
  const top = hi ?? Math.max(...all.map(f)), bottom = lo ?? Math.min(...all.map(f));
  const span = top - bottom || 1;
  const n = Math.max(netState.job ? netState.job.epochs : 2, ...series.map((s) => s.values.length), 2);
  const px = (i) => L + ((W - L - R) * i) / (n - 1);
  const py = (v) => T + ((H - T - B) * (top - f(v))) / span;
  const decade = (v) => `1e${v.toFixed(1).replace(/\.0$/, "").replace(/^-0$/, "0")}`;
  ctx.fillText(logScale ? decade(top) : fmt(top), 6, T + 24);
  ctx.fillText(logScale ? decade(bottom) : fmt(bottom), 6, H - B);
  ctx.fillText(`epoch ${n}`, W - R - 60, H - 6);
  for (const s of series) {
    if (!s.values.length) continue;
    ctx.strokeStyle = s.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.values.forEach((v, i) => (i ? ctx.lineTo(px(i), py(v)) : ctx.moveTo(px(i), py(v))));
    ctx.stroke();
  }
  ctx.lineWidth = 1;
}

function showNetJob(job) {
  const p = job.progress || {};
  const parts = [`job ${job.id.slice(0, 8)}: ${job.status}`, `epoch ${p.epoch}/${p.epochs}`];
  if (p.accuracy != null) parts.push(`accuracy ${fmt(p.accuracy)}`);
  if (p.val_accuracy != null) parts.push(`validation ${fmt(p.val_accuracy)}`);
  if (job.error) parts.push(job.error);
  const status = $("net-status");
  status.textContent = parts.join(" · ");
  status.dataset.status = job.status;
  const h = job.history || {};
  drawCurves("net-loss", [
    { values: job.loss_history || [], color: "#2f6fdf" },
    { values: h.val_loss || [], color: "#e8833a" },
  ], { logScale: true, label: "loss" });
  drawCurves("net-acc", [
    { values: h.accuracy || [], color: "#2f6fdf" },
    { values: h.val_accuracy || [], color: "#e8833a" },
  ], { lo: 0, hi: 1, label: "accuracy" });
}

async function netSummary(layers) {
  const resp = await api("/v1/networks/summary", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ network: layers, input_shape: [1, 8, 8] }),
  });
  const s = await resp.json();
  const table = $("net-summary");
  table.replaceChildren();
  table.createCaption().textContent = `${s.params} parameters; a dense layer doing the same: ${s.dense_equivalent_params}`;
  const head = table.insertRow();
  for (const h of ["layer", "output", "params", "field"]) head.insertCell().textContent = h;
  for (const row of s.layers) {
    const tr = table.insertRow();
    tr.insertCell().textContent = `${row.index} ${row.type}`;
    tr.insertCell().textContent = row.output_shape.join("×");
    tr.insertCell().textContent = String(row.params);
    tr.insertCell().textContent = row.receptive_field ? row.receptive_field.size.join("×") : "";
  }
}

async function startNetwork() {
  let layers;
  try {
    layers = JSON.parse($("net-layers").value);
  } catch (e) {
    throw new Error(`the layers are not valid JSON: ${e.message}`);
  }
  if (netState.job && netState.job.timer) clearTimeout(netState.job.timer);
  await netSummary(layers);
  const seed = Number($("net-seed").value);
  const { x, y } = stripesData(300, seed);
  const epochs = Number($("net-epochs").value);
  const resp = await api("/v1/jobs", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({
      x, y, network: layers, loss: "softmax_cross_entropy", optimizer: "adam",
      learning_rate: Number($("net-lr").value), epochs, batch_size: 20,
      validation_split: Number($("net-split").value), seed, name: "playground: stripes network",
    }),
  });
  const job = await resp.json();
  netState.job = { id: job.id, epochs, timer: null };
  $("net-train").disabled = true;
  $("net-cancel").hidden = false;
  showNetJob(job);
  pollNetwork();
}

async function pollNetwork() {
  const job = netState.job;
  if (!job) return;
  try {
    const record = await (await api(`/v1/jobs/${job.id}`, { headers: { Accept: "application/json" } })).json();
    if (netState.job !== job) return;
    showNetJob(record);
    if (FINISHED.has(record.status)) {
      $("net-train").disabled = false;
      $("net-cancel").hidden = true;
      $("net-status").dataset.done = "true";
      return;
    }
  } catch (err) {
    showError(err);
  }
  job.timer = setTimeout(pollNetwork, 300);
}

function wireNetwork() {
  $("net-layers").value = JSON.stringify(NET_DEFAULT, null, 1);
  $("net-train").addEventListener("click", () => startNetwork().catch((e) => {
    $("net-status").textContent = `could not start: ${e.message}`;
    $("net-status").dataset.status = "failed";
    $("net-train").disabled = false;
  }));
  $("net-cancel").addEventListener("click", () => {
    if (netState.job) {
      api(`/v1/jobs/${netState.job.id}/cancel`, { method: "POST", headers: { Accept: "application/json" } })
        .catch(showError);
    }
  });
  drawCurves("net-loss", [], { logScale: true, label: "loss" });
  drawCurves("net-acc", [], { lo: 0, hi: 1, label: "accuracy" });
}

wireNetwork();
