// One run's page: draw its charts, grow them live from the run's server-sent events
// (Plotly.extendTraces: trace 0 raw, trace 1 smoothed), keep the status, progress and ETA current,
// and once it is done switch the PR curve's class and threshold. State lives in the URL.
// The server computes what is drawn: the stream carries each metric smoothed at the page's
// weight, GET /api/runs/{id}/scalars redraws every chart at another weight, and
// GET /api/runs/{id}/pr gives a class's curve and its operating point at a threshold.
import { bindKeys, el, PLOT_CONFIG, showError } from "./dom.js";

const data = JSON.parse(document.getElementById("run-data").textContent);
const FINAL = new Set(data.final_statuses);
const FLUSH_MS = 100; // batch the stream's points: one redraw per figure at most ten times a second
const DEBOUNCE_MS = 60; // a slider asks the server once it has been still this long
const RUN_PATH = `/api/runs/${encodeURIComponent(data.id)}`;

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
let source = null; // the live stream, while the page follows one
const RETRY_STREAM_S = 5; // a refused stream is opened again after this long

// -- the charts ----------------------------------------------------------------------------

const figures = new Map(); // metric name -> { div, ready, pending: {x, y, smoothed} }
let template = data.template; // an empty chart as scalar_figure draws one at the current weight

function figureId(name) {
  return "fig-" + name.replace(/[^A-Za-z0-9_-]/g, "-");
}

function register(name, div, ready) {
  const entry = { div, ready, pending: { x: [], y: [], smoothed: [] } };
  figures.set(name, entry);
  return entry;
}

function drawServerFigures() {
  for (const wrap of charts.querySelectorAll(".plot-wrap")) {
    const figure = JSON.parse(wrap.querySelector("script.plot-data").textContent);
    const div = wrap.querySelector(".plot");
    const name = figure.layout.uirevision; // scalar_figure sets it to the metric's name
    register(name, div, window.Plotly.newPlot(div, figure.data, figure.layout, PLOT_CONFIG));
  }
}

// An empty chart for `name`, shaped like the server's scalar_figure.
function emptyFigure(name) {
  const figure = structuredClone(template);
  figure.layout.title.text = data.titles?.[name] ?? name;
  figure.layout.yaxis.title.text = name;
  figure.layout.uirevision = name;
  return figure;
}

// A metric seen for the first time: a new, empty chart to grow.
function addFigure(name) {
  const figure = emptyFigure(name);
  const wrap = el("figure", "plot-wrap");
  const div = el("div", "plot");
  div.id = figureId(name);
  div.dataset.metric = name;
  div.setAttribute("role", "img");
  div.setAttribute("aria-label", figure.layout.title.text);
  wrap.append(div);
  charts.append(wrap);
  document.getElementById("no-metrics").hidden = true;
  return register(name, div, window.Plotly.newPlot(div, figure.data, figure.layout, PLOT_CONFIG));
}

let flushTimer = null;

function queuePoint(metric) {
  const entry = figures.get(metric.name) ?? addFigure(metric.name);
  entry.pending.x.push(metric.step);
  entry.pending.y.push(metric.value);
  entry.pending.smoothed.push(metric.smoothed);
  if (flushTimer === null) flushTimer = setTimeout(flush, FLUSH_MS);
}

function flush() {
  clearTimeout(flushTimer);
  flushTimer = null;
  for (const entry of figures.values()) {
    if (!entry.pending.x.length) continue;
    const { x, y, smoothed } = entry.pending;
    entry.pending = { x: [], y: [], smoothed: [] };
    entry.ready = entry.ready.then(() => window.Plotly.extendTraces(entry.div, { x: [x, x], y: [y, smoothed] }, [0, 1]));
  }
}

// Every chart as the server drew it (a metric it has no points of yet starts empty again: the
// stream that follows replays its points at the new weight).
function drawScalars(answer) {
  template = answer.template;
  const names = new Set([...figures.keys(), ...Object.keys(answer.figures)]);
  for (const name of names) {
    const entry = figures.get(name) ?? addFigure(name);
    const figure = answer.figures[name] ?? emptyFigure(name);
    entry.pending = { x: [], y: [], smoothed: [] };
    entry.ready = entry.ready.then(() => window.Plotly.react(entry.div, figure.data, figure.layout, PLOT_CONFIG));
  }
  return Promise.all([...figures.values()].map((entry) => entry.ready));
}

async function getJson(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail ?? `the server answered ${response.status}`);
  return body;
}

let scalarsTimer = null;
let scalarsTicket = 0;

// Ask the server for every chart at weight `w`; the newest answer wins. A live run's stream is
// then restarted after the last point drawn, carrying values smoothed at `w`.
async function loadScalars(w) {
  const mine = ++scalarsTicket;
  let answer;
  try {
    answer = await getJson(`${RUN_PATH}/scalars?smoothing=${encodeURIComponent(w)}`);
  } catch (error) {
    if (mine === scalarsTicket) showError(liveError, `Could not redraw the charts: ${error.message}`);
    return;
  }
  if (mine !== scalarsTicket) return; // a newer weight was asked for: its answer wins
  weight = answer.smoothing;
  const live = source !== null;
  stopFollowing(); // its points were smoothed at the old weight
  await drawScalars(answer);
  if (live && !FINAL.has(status)) follow(answer.last_event_id);
}

function setUrlParam(name, value) {
  const params = new URLSearchParams(location.search);
  params.set(name, String(value));
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

slider?.addEventListener("input", () => {
  sliderOut.textContent = slider.value;
  setUrlParam("smoothing", slider.value);
  clearTimeout(scalarsTimer);
  scalarsTimer = setTimeout(() => loadScalars(Number(slider.value)), DEBOUNCE_MS);
});

// -- status, progress, ETA -----------------------------------------------------------------

function showStatus(next) {
  status = next;
  badge.textContent = next;
  badge.className = `status-badge status-${next}`;
  if (FINAL.has(next) && cancelButton) cancelButton.hidden = true;
  if (next === "deleted") showError(liveError, "This run has been deleted: its metrics and files are gone.");
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

function fetchRun() {
  return getJson(RUN_PATH);
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
    // The summary panels are rendered by the server from summary.json: reload once to get them.
    if (run.status === "completed" && !data.has_summary) {
      location.reload();
      return;
    }
  } catch (error) {
    showError(liveError, `Could not read the finished run: ${error.message}`);
    return;
  }
  // The charts as the store holds them now, every point (the stream should already agree).
  await loadScalars(weight);
}

function stopFollowing() {
  source?.close();
  source = null;
}

// Follow the run's events after metric id `after`, each metric smoothed by the server at the
// page's weight (a reconnect sends Last-Event-ID and the server carries the average on).
function follow(after) {
  const query = new URLSearchParams({ after: String(after), smoothing: String(weight) });
  const mine = new EventSource(`${RUN_PATH}/events?${query}`);
  source = mine;
  let seen = after; // the newest metric id received: where a fresh stream takes over
  mine.addEventListener("metric", (event) => {
    seen = Math.max(seen, Number(event.lastEventId) || 0);
    queuePoint(JSON.parse(event.data));
  });
  mine.addEventListener("status", (event) => {
    const update = JSON.parse(event.data);
    const wasQueued = status === "queued";
    showStatus(update.status);
    showProgress(update.progress);
    if (FINAL.has(update.status)) {
      stopFollowing(); // the server ends the stream here; without close() the browser reconnects
      ended();
      return;
    }
    if (wasQueued && update.status === "running") {
      clearInterval(queueTimer);
      fetchRun().then(showRun, () => {});
    }
    showEta();
  });
  mine.addEventListener("open", () => showError(liveError, ""));
  mine.addEventListener("error", () => {
    if (FINAL.has(status) || source !== mine) return;
    if (mine.readyState === EventSource.CLOSED) {
      // Refused (a 503 while the run store is unreachable, a 429): EventSource gives up for
      // good, so open a new stream from the last metric after a pause.
      showError(liveError, `Lost the live connection; trying again in ${RETRY_STREAM_S} s…`);
      setTimeout(() => {
        if (source === mine && !FINAL.has(status)) follow(seen);
      }, RETRY_STREAM_S * 1000);
      return;
    }
    // EventSource reconnects by itself (sending Last-Event-ID): say so while it does.
    showError(liveError, "Lost the live connection; reconnecting…");
  });
}

cancelButton?.addEventListener("click", async () => {
  cancelButton.disabled = true;
  try {
    const response = await fetch(`${RUN_PATH}/cancel`, { method: "POST", headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail ?? `the server answered ${response.status}`);
    showStatus(body.status);
  } catch (error) {
    showError(liveError, `Could not cancel: ${error.message}`);
    cancelButton.disabled = false;
  }
});

// -- precision / recall: the server's curve and operating point, drawn ---------------------

const prSelect = document.getElementById("pr-class");
const threshold = document.getElementById("threshold");
const thresholdOut = document.getElementById("threshold-out");
const prDiv = document.getElementById("fig-pr");
const prReadout = document.getElementById("pr-readout");

// The readout of an answer of GET /api/runs/{id}/pr (the page's first one is in its data).
function showReadout(pr, figure) {
  const name = pr.pr_class;
  if (!figure.data[0].customdata.length) {
    prReadout.textContent = `No held-out sample of class ${name}.`;
    return;
  }
  prReadout.textContent =
    `Class ${name} at p ≥ ${pr.threshold.toFixed(2)}: precision ${pr.precision.toFixed(3)}, ` +
    `recall ${pr.recall.toFixed(3)} (${pr.positives} held-out samples of it).`;
}

function drawPr(pr) {
  const figure = pr.figure;
  return window.Plotly.react(prDiv, figure.data, figure.layout, PLOT_CONFIG).then(() => showReadout(pr, figure));
}

let prTimer = null;
let prTicket = 0;

async function loadPr() {
  const mine = ++prTicket;
  const query = new URLSearchParams({ pr_class: prSelect.value, threshold: threshold.value });
  try {
    const answer = await getJson(`${RUN_PATH}/pr?${query}`);
    if (mine !== prTicket) return; // a newer class or threshold was asked for: its answer wins
    showError(liveError, "");
    await drawPr(answer);
  } catch (error) {
    if (mine === prTicket) showError(liveError, `Could not draw the precision/recall curve: ${error.message}`);
  }
}

function askPr(delay) {
  clearTimeout(prTimer);
  prTimer = setTimeout(loadPr, delay);
}

if (prDiv && data.pr) {
  const k = data.pr.selected;
  drawPr({
    ...data.pr.at,
    pr_class: prSelect.options[k].value,
    positives: data.pr.positives[k],
    figure: data.pr.figures[k],
  });
  prSelect.addEventListener("change", () => {
    setUrlParam("pr_class", prSelect.value);
    askPr(0);
  });
  threshold.addEventListener("input", () => {
    thresholdOut.textContent = threshold.value;
    setUrlParam("threshold", threshold.value);
    askPr(DEBOUNCE_MS);
  });
}

// -- keys ----------------------------------------------------------------------------------

const SMOOTHING_STEP = 0.05;

function stepSmoothing(delta) {
  if (!slider) return false;
  const value = Math.round((Number(slider.value) + delta * SMOOTHING_STEP) * 100) / 100;
  slider.value = String(Math.min(Number(slider.max), Math.max(0, value)));
  slider.dispatchEvent(new Event("input", { bubbles: true }));
  return true;
}

// Sliders and fields keep their own arrow keys.
bindKeys({ ArrowLeft: () => stepSmoothing(-1), ArrowRight: () => stepSmoothing(1) }, { ignore: "input, textarea, select" });

// -- start ---------------------------------------------------------------------------------

drawServerFigures();
if (!FINAL.has(status)) {
  follow(data.last_event_id);
  etaTimer = setInterval(() => showEta(), 1000);
  if (status === "queued") {
    queueTimer = setInterval(() => {
      if (status === "queued") fetchRun().then(showRun, () => {});
    }, 2000);
  }
}
