// One run's page: draw its charts, grow them live from the run's server-sent events
// (Plotly.extendTraces: trace 0 raw, trace 1 smoothed), keep the status, progress and ETA current,
// and once it is done switch the PR curve's class and threshold. State lives in the URL.

const data = JSON.parse(document.getElementById("run-data").textContent);
const FINAL = new Set(data.final_statuses);
const PLOT_CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
const FLUSH_MS = 100; // batch the stream's points: one redraw per figure at most ten times a second

const badge = document.getElementById("run-status");
const bar = document.getElementById("run-progress");
const progressText = document.getElementById("progress-text");
const etaText = document.getElementById("run-eta");
const cancelButton = document.getElementById("cancel-run");
const liveError = document.getElementById("live-error");
const charts = document.getElementById("charts");
const slider = document.getElementById("smoothing");
const sliderOut = document.getElementById("smoothing-out");

let status = data.status;
let progress = data.progress;
let startedAt = data.started_at ? Date.parse(data.started_at) : null;
const clockSkew = Date.parse(data.server_now) - Date.now(); // server time = client time + skew
let weight = data.smoothing;
let position = data.position ?? null; // place in the queue, from the last time the run was read

// -- smoothing: the same debiased EMA as app/lessons/tracking.smooth -------------------------

function emaState() {
  return { last: 0, kept: 0 };
}

// One value through the moving average; non-finite values pass through and do not count.
function smoothOne(state, value, w) {
  if (value === null || value === undefined || !Number.isFinite(value)) return value ?? null;
  state.last = state.last * w + (1 - w) * value;
  state.kept += 1;
  const debias = w > 0 ? 1 - w ** state.kept : 1;
  return state.last / debias;
}

function smoothAll(values, w) {
  const state = emaState();
  return { out: values.map((v) => smoothOne(state, v, w)), state };
}

// -- the charts ----------------------------------------------------------------------------

const figures = new Map(); // metric name -> { div, ready, ema, pending: {x, y} }

function figureId(name) {
  return "fig-" + name.replace(/[^A-Za-z0-9_-]/g, "-");
}

function register(name, div, ready) {
  const trace = div.data?.[0];
  const raw = trace ? Array.from(trace.y ?? []) : [];
  const entry = { div, ready, ema: smoothAll(raw, weight).state, pending: { x: [], y: [] } };
  figures.set(name, entry);
  return entry;
}

function drawServerFigures() {
  for (const wrap of charts.querySelectorAll(".plot-wrap")) {
    const figure = JSON.parse(wrap.querySelector("script.plot-data").textContent);
    const div = wrap.querySelector(".plot");
    const name = figure.layout.uirevision; // scalar_figure sets it to the metric's name
    const ready = window.Plotly.newPlot(div, figure.data, figure.layout, PLOT_CONFIG);
    const entry = register(name, div, ready);
    ready.then(() => {
      entry.ema = smoothAll(Array.from(div.data[0].y ?? []), weight).state;
    });
  }
}

// A metric seen for the first time: a new figure shaped like the server's scalar_figure.
function addFigure(name) {
  const figure = structuredClone(data.template);
  figure.layout.title.text = data.titles?.[name] ?? name;
  figure.layout.yaxis.title.text = name;
  figure.layout.uirevision = name;
  const wrap = document.createElement("figure");
  wrap.className = "plot-wrap";
  const div = document.createElement("div");
  div.className = "plot";
  div.id = figureId(name);
  div.dataset.metric = name;
  div.setAttribute("role", "img");
  div.setAttribute("aria-label", figure.layout.title.text);
  wrap.append(div);
  charts.append(wrap);
  document.getElementById("no-metrics").hidden = true;
  const ready = window.Plotly.newPlot(div, figure.data, figure.layout, PLOT_CONFIG);
  return register(name, div, ready);
}

let flushTimer = null;

function queuePoint(metric) {
  const entry = figures.get(metric.name) ?? addFigure(metric.name);
  entry.pending.x.push(metric.step);
  entry.pending.y.push(metric.value);
  if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
}

function flush() {
  flushTimer = null;
  for (const entry of figures.values()) {
    if (!entry.pending.x.length) continue;
    const { x, y } = entry.pending;
    entry.pending = { x: [], y: [] };
    entry.ready = entry.ready.then(() => {
      const smoothed = y.map((v) => smoothOne(entry.ema, v, weight));
      return window.Plotly.extendTraces(entry.div, { x: [x, x], y: [y, smoothed] }, [0, 1]);
    });
  }
}

// Redraw every smoothed trace from its raw one, as scalar_figure would at this weight.
function applySmoothing(w) {
  weight = w;
  for (const entry of figures.values()) {
    entry.ready = entry.ready.then(() => {
      const raw = Array.from(entry.div.data[0].y ?? []);
      const { out, state } = smoothAll(raw, w);
      entry.ema = state;
      return window.Plotly.restyle(entry.div, { opacity: [w > 0 ? 0.3 : 1.0] }, [0]).then(() =>
        window.Plotly.restyle(entry.div, { y: [out], visible: [w > 0 ? true : "legendonly"], meta: [{ smoothing: w }] }, [1]),
      );
    });
  }
}

function setUrlParam(name, value) {
  const params = new URLSearchParams(location.search);
  params.set(name, String(value));
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

slider?.addEventListener("input", () => {
  sliderOut.textContent = slider.value;
  setUrlParam("smoothing", slider.value);
  applySmoothing(Number(slider.value));
});

// -- status, progress, ETA -----------------------------------------------------------------

function showStatus(next) {
  status = next;
  badge.textContent = next;
  badge.className = `status-badge status-${next}`;
  if (FINAL.has(next) && cancelButton) cancelButton.hidden = true;
}

function showProgress(value) {
  progress = value;
  bar.value = value;
  progressText.textContent = `${Math.round(value * 100)}%`;
}

function etaLine() {
  if (FINAL.has(status)) return "";
  if (status === "queued") return position ? `#${position} in the queue` : "queued";
  if (startedAt === null || progress <= 0) return "starting…";
  const elapsed = (Date.now() + clockSkew - startedAt) / 1000;
  return `about ${Math.round((elapsed * (1 - progress)) / progress)} s left`;
}

function showEta() {
  etaText.textContent = etaLine();
}

function setTime(id, iso) {
  const cell = document.getElementById(id);
  if (!cell || !iso) return;
  const time = document.createElement("time");
  time.dateTime = iso;
  time.textContent = `${iso.slice(0, 19).replace("T", " ")} UTC`;
  cell.replaceChildren(time);
}

async function fetchRun() {
  const response = await fetch(`/api/runs/${encodeURIComponent(data.id)}`, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  return response.json();
}

// Make the figures hold exactly what the store holds (the stream should already agree).
function syncFigures(metrics) {
  for (const [name, points] of Object.entries(metrics)) {
    const entry = figures.get(name) ?? addFigure(name);
    entry.ready = entry.ready.then(() => {
      if ((entry.div.data[0].x ?? []).length === points.length) return undefined;
      const x = points.map((p) => p[0]);
      const y = points.map((p) => p[1]);
      const { out, state } = smoothAll(y, weight);
      entry.ema = state;
      return window.Plotly.restyle(entry.div, { x: [x, x], y: [y, out] }, [0, 1]);
    });
  }
}

function showRun(run) {
  showStatus(run.status);
  showProgress(run.progress);
  if (run.started_at) {
    startedAt = Date.parse(run.started_at);
    setTime("run-started", run.started_at);
  }
  setTime("run-finished", run.finished_at);
  const error = document.getElementById("run-error");
  error.textContent = run.error ?? "";
  error.hidden = !run.error;
  position = run.position;
  showEta();
}

let etaTimer = null;
let queueTimer = null;

async function ended() {
  clearInterval(etaTimer);
  clearInterval(queueTimer);
  flush();
  try {
    const run = await fetchRun();
    showRun(run);
    syncFigures(run.metrics);
    // The summary panels are rendered by the server from summary.json: reload once to get them.
    if (run.status === "completed" && !data.has_summary) location.reload();
  } catch (error) {
    liveError.textContent = `Could not read the finished run: ${error.message}`;
    liveError.hidden = false;
  }
}

function follow() {
  const source = new EventSource(`/api/runs/${encodeURIComponent(data.id)}/events?after=${data.last_event_id}`);
  source.addEventListener("metric", (event) => queuePoint(JSON.parse(event.data)));
  source.addEventListener("status", (event) => {
    const update = JSON.parse(event.data);
    const wasQueued = status === "queued";
    showStatus(update.status);
    showProgress(update.progress);
    if (FINAL.has(update.status)) {
      source.close(); // the server ends the stream here; without close() the browser reconnects
      ended();
      return;
    }
    if (wasQueued && update.status === "running") {
      clearInterval(queueTimer);
      fetchRun().then(showRun, () => {});
    }
    showEta();
  });
  source.addEventListener("open", () => {
    liveError.hidden = true;
  });
  source.addEventListener("error", () => {
    if (FINAL.has(status)) return;
    // EventSource reconnects by itself (sending Last-Event-ID): say so while it does.
    liveError.textContent = "Lost the live connection; reconnecting…";
    liveError.hidden = false;
  });
}

cancelButton?.addEventListener("click", async () => {
  cancelButton.disabled = true;
  try {
    const response = await fetch(`/api/runs/${encodeURIComponent(data.id)}/cancel`, {
      method: "POST",
      headers: { Accept: "application/json" },
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail ?? `the server answered ${response.status}`);
    showStatus(body.status);
  } catch (error) {
    liveError.textContent = `Could not cancel: ${error.message}`;
    liveError.hidden = false;
    cancelButton.disabled = false;
  }
});

// -- precision / recall --------------------------------------------------------------------

const prSelect = document.getElementById("pr-class");
const threshold = document.getElementById("threshold");
const thresholdOut = document.getElementById("threshold-out");
const prDiv = document.getElementById("fig-pr");
const prReadout = document.getElementById("pr-readout");
let prClass = data.pr?.selected ?? 0;

// The operating point as pr_figure marks it: the lowest listed threshold still >= the chosen one.
function operatingPoint(curve, t) {
  let at = 0;
  curve.customdata.forEach((value, j) => {
    if (value >= t) at = j;
  });
  return at;
}

function showOperatingPoint() {
  if (!prDiv || !data.pr) return Promise.resolve();
  const t = Number(threshold.value);
  thresholdOut.textContent = threshold.value;
  const curve = data.pr.figures[prClass].data[0];
  const name = prSelect.options[prClass].text;
  if (!curve.customdata.length) {
    prReadout.textContent = `No held-out sample of class ${name}.`;
    return Promise.resolve();
  }
  const at = operatingPoint(curve, t);
  const recall = curve.x[at];
  const precision = curve.y[at];
  prReadout.textContent =
    `Class ${name} at p ≥ ${t.toFixed(2)}: precision ${precision.toFixed(3)}, ` +
    `recall ${recall.toFixed(3)} (${data.pr.positives[prClass]} held-out samples of it).`;
  if (!prDiv.data || prDiv.data.length < 2) return Promise.resolve(); // no marker trace
  return window.Plotly.restyle(prDiv, { x: [[recall]], y: [[precision]], name: `${curve.name} at p ≥ ${t}` }, [1]);
}

function drawPr() {
  const figure = data.pr.figures[prClass];
  return window.Plotly.react(prDiv, structuredClone(figure.data), figure.layout, PLOT_CONFIG).then(showOperatingPoint);
}

if (prDiv && data.pr) {
  drawPr();
  prSelect.addEventListener("change", () => {
    prClass = prSelect.selectedIndex;
    setUrlParam("pr_class", prSelect.value);
    drawPr();
  });
  threshold.addEventListener("input", () => {
    setUrlParam("threshold", threshold.value);
    showOperatingPoint();
  });
}

// -- keys ----------------------------------------------------------------------------------

document.addEventListener("keydown", (event) => {
  if (!slider || event.altKey || event.ctrlKey || event.metaKey) return;
  if (event.target.closest("input, textarea, select")) return; // sliders and fields keep their keys
  const delta = { ArrowLeft: -1, ArrowRight: 1 }[event.key];
  if (!delta) return;
  const step = 0.05;
  const next = Math.min(Number(slider.max), Math.max(0, Math.round((Number(slider.value) + delta * step) * 100) / 100));
  slider.value = String(next);
  slider.dispatchEvent(new Event("input", { bubbles: true }));
  event.preventDefault();
});

// -- start ---------------------------------------------------------------------------------

drawServerFigures();
if (!FINAL.has(status)) {
  follow();
  etaTimer = setInterval(() => showEta(), 1000);
  if (status === "queued") {
    queueTimer = setInterval(() => {
      if (status === "queued") fetchRun().then(showRun, () => {});
    }, 2000);
  }
}
