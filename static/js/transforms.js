// Transforms: assemble a pipeline, see every stage side by side.
// The server rendered the first view from the URL (?p=<pipeline>&sample=<name>&stage=<n>). Here
// the learner adds, edits, removes and reorders transforms; each change goes to
// POST /api/transforms/apply (with the sample's name, or the uploaded file) and the stages it
// returns are drawn here. The hidden `p` field carries the pipeline in the URL: lesson.js writes
// the URL and refreshes the parts that depend on the pipeline alone (source, dataset, snippet).
// An upload never goes in the URL. Learner text only reaches the page through textContent.

import { bindKeys, el, FIELDS, fmt, PLOT_CONFIG, showError } from "./dom.js";

const $ = (id) => document.getElementById(id);
const data = JSON.parse($("transforms-data").textContent);
const PALETTE = Object.fromEntries(data.palette.map((t) => [t.name, t]));
const CHANNEL_COLOURS = { R: "#c44e52", G: "#55a868", B: "#4c72b0", L: "#555555" }; // as app/viz/transforms.py

const form = $("controls");
const list = $("pipeline");
const strip = $("stages");
const detail = $("stage-detail");
const banner = $("lesson-error");
const pField = $("p");
const stageField = $("stage");
const sampleSelect = $("sample");
const upload = $("upload");
const useSample = $("use-sample");
const uploadNote = $("upload-note");
const plot = $("fig-histogram");
const baseLayout = JSON.parse(plot.closest(".plot-wrap").querySelector("script.plot-data").textContent).layout;
const SAMPLE_NOTE = uploadNote.textContent;

const state = {
  pipeline: data.pipeline.map((item) => ({ ...item })),
  stages: [data.input, ...data.stages], // [input, stage 1, ...]
  stage: data.stage,
  file: null,
  error: data.error ? data.error.message : "",
};

// --- the pipeline as the URL writes it (app/lessons/transforms.py pipeline_to_url) -------------

function urlArg(kind, value) {
  if (kind === "size" && Array.isArray(value)) return `${value[0]}x${value[1]}`;
  if (Array.isArray(value)) return value.map(String).join("_");
  return String(value);
}

function pipelineToUrl(pipeline) {
  return pipeline
    .map((item) => {
      const info = PALETTE[item.name];
      return [item.name, ...info.params.map((key) => urlArg(info.kinds[key], item[key]))].join(":");
    })
    .join(",");
}

// --- the editor ----------------------------------------------------------------------------------

function numberInput(value, label, extra = {}) {
  const input = el("input");
  input.type = "number";
  input.value = value === undefined || value === null ? "" : String(value);
  input.setAttribute("aria-label", label);
  for (const [key, v] of Object.entries(extra)) input.setAttribute(key, v);
  return input;
}

function readNumber(input) {
  const text = input.value.trim();
  if (text === "") return text; // the server names what is missing
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
}

function readValues(text) {
  const parts = text.split(/[\s,;_]+/).filter(Boolean);
  const numbers = parts.map(Number);
  return parts.length && numbers.every(Number.isFinite) ? numbers : text;
}

function sizeField(item, key, where) {
  const [h, w] = Array.isArray(item[key]) ? item[key] : [item[key], ""];
  const box = el("div", "pipe-field pipe-size");
  const height = numberInput(h, `${where} height`, { min: "1", step: "1", inputmode: "numeric" });
  const width = numberInput(w, `${where} width`, { min: "1", step: "1", inputmode: "numeric" });
  width.placeholder = item.name === "resize" ? "keep aspect" : "= H";
  const read = () => {
    const hv = readNumber(height);
    const wv = readNumber(width);
    item[key] = wv === "" ? hv : [hv, wv];
  };
  const hl = el("label", "", "H ");
  hl.append(height);
  const wl = el("label", "", "W ");
  wl.append(width);
  box.append(el("span", "pipe-key", "size"), hl, el("span", "times", "×"), wl);
  return [box, read];
}

function paramField(item, key, kind, where) {
  if (kind === "size") return sizeField(item, key, where);
  const label = el("label", "pipe-field");
  label.append(el("span", "pipe-key", key));
  let input;
  let read;
  if (kind === "values" || kind === "positive values") {
    input = el("input");
    input.type = "text";
    input.value = Array.isArray(item[key]) ? item[key].join(", ") : String(item[key] ?? "");
    input.setAttribute("aria-label", `${where} ${key}, one per channel`);
    input.setAttribute("autocomplete", "off");
    input.setAttribute("spellcheck", "false");
    read = () => {
      item[key] = readValues(input.value);
    };
  } else {
    const steps = { degrees: { step: "5", min: "-360", max: "360" }, factor: { step: "0.5" }, seed: { step: "1", min: "0" } };
    input = numberInput(item[key], `${where} ${key}`, steps[kind] || {});
    read = () => {
      item[key] = readNumber(input);
    };
  }
  label.append(input);
  return [label, read];
}

function iconButton(text, label, action, disabled = false) {
  const button = el("button", "pipe-button", text);
  button.type = "button";
  button.dataset.action = action;
  button.setAttribute("aria-label", label);
  button.title = label;
  button.disabled = disabled;
  return button;
}

function pipelineItem(item, index) {
  const info = PALETTE[item.name];
  const where = `Stage ${index + 1} ${info.title}`;
  const li = el("li", "pipe-item");
  li.dataset.index = String(index);
  li.dataset.name = item.name;
  const head = el("div", "pipe-head");
  head.append(el("span", "pipe-num", String(index + 1)), el("strong", "pipe-title", info.title), el("span", "pipe-works", info.works_on));
  li.append(head);
  const readers = [];
  if (info.params.length) {
    const fields = el("div", "pipe-params");
    for (const key of info.params) {
      const [field, read] = paramField(item, key, info.kinds[key], where);
      fields.append(field);
      readers.push(read);
    }
    li.append(fields);
  }
  li.addEventListener("input", () => readers.forEach((read) => read()));
  const buttons = el("div", "pipe-buttons");
  const last = index === state.pipeline.length - 1;
  buttons.append(
    iconButton("↑", `Move ${info.title} (stage ${index + 1}) up`, "up", index === 0),
    iconButton("↓", `Move ${info.title} (stage ${index + 1}) down`, "down", last),
    iconButton("✕", `Remove ${info.title} (stage ${index + 1})`, "remove"),
  );
  head.append(buttons);
  return li;
}

function renderPipeline(focus = null) {
  list.replaceChildren(...state.pipeline.map(pipelineItem));
  if (!state.pipeline.length) list.append(el("li", "pipe-empty muted", "No transforms yet: add one below."));
  if (!focus) return;
  const item = list.querySelector(`.pipe-item[data-index="${focus.index}"]`);
  const target =
    item?.querySelector(`[data-action="${focus.action}"]:not(:disabled)`) ||
    item?.querySelector("[data-action]:not(:disabled)") ||
    form.querySelector(".palette .add");
  target?.focus();
}

// A change of structure (add, remove, move): lesson.js writes the URL and refreshes the partial.
function changed({ structural }) {
  pField.value = pipelineToUrl(state.pipeline);
  if (structural) form.dispatchEvent(new CustomEvent("lesson:update"));
  scheduleApply();
}

function move(index, delta) {
  const to = index + delta;
  if (to < 0 || to >= state.pipeline.length) return;
  const [item] = state.pipeline.splice(index, 1);
  state.pipeline.splice(to, 0, item);
  renderPipeline({ index: to, action: delta < 0 ? "up" : "down" });
  changed({ structural: true });
}

function remove(index) {
  state.pipeline.splice(index, 1);
  state.stage = Math.min(state.stage, state.pipeline.length);
  stageField.value = String(state.stage);
  renderPipeline({ index: Math.min(index, state.pipeline.length - 1), action: "remove" });
  changed({ structural: true });
}

function add(name) {
  const info = PALETTE[name];
  state.pipeline.push({ name, ...structuredClone(info.defaults) });
  state.stage = state.pipeline.length; // show what the new transform made
  stageField.value = String(state.stage);
  renderPipeline();
  const item = list.lastElementChild;
  (item.querySelector("input") || item.querySelector("[data-action]:not(:disabled)"))?.focus();
  changed({ structural: true });
}

list.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const index = Number(button.closest(".pipe-item").dataset.index);
  if (button.dataset.action === "up") move(index, -1);
  else if (button.dataset.action === "down") move(index, 1);
  else remove(index);
});
// Runs before lesson.js's listener on the form (the event bubbles to it next), so `p` is fresh.
list.addEventListener("input", () => changed({ structural: false }));
list.addEventListener("keydown", (event) => {
  if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
  const item = event.target.closest(".pipe-item");
  if (!item) return;
  event.preventDefault();
  move(Number(item.dataset.index), event.key === "ArrowUp" ? -1 : 1);
});
form.querySelector(".palette").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-add]");
  if (button) add(button.dataset.add);
});

// --- the stages ----------------------------------------------------------------------------------

const layoutName = (s) => (s.layout === "HWC" ? "H×W×C" : "C×H×W");
const stageName = (s, index) => (index === 0 ? "The input picture" : `Stage ${index} · ${s.call}`);

function stageCard(s, index, selected) {
  const li = el("li", `stage-card kind-${s.kind}${selected ? " selected" : ""}`);
  li.dataset.stage = String(index);
  const pick = el("button", "stage-pick");
  pick.type = "button";
  pick.setAttribute("aria-pressed", String(selected));
  pick.setAttribute("aria-label", `Stage ${index}: ${s.call}, ${s.kind} [${s.shape.join(", ")}]`);
  const img = el("img", "stage-preview");
  img.src = s.preview;
  img.alt = "";
  img.width = s.preview_size[1];
  img.height = s.preview_size[0];
  pick.append(img);
  const title = el("div", "stage-title");
  title.append(el("span", "stage-num", String(index)), " ", el("code", "", s.call));
  const meta = el("dl", "stage-meta");
  const row = (name, ...values) => {
    const div = el("div");
    div.append(el("dt", "", name), ...values);
    return div;
  };
  meta.append(
    row("kind", el("dd", "stage-kind", s.kind)),
    row("shape", el("dd", "stage-shape", `[${s.shape.join(", ")}]`), el("dd", "stage-layout", layoutName(s))),
    row("dtype", el("dd", "stage-dtype", s.dtype)),
    row("range", el("dd", "stage-range", `${fmt(s.min)} … ${fmt(s.max)}`)),
  );
  li.append(pick, title, meta);
  return li;
}

function renderStages() {
  const hadFocus = strip.contains(document.activeElement);
  strip.replaceChildren(...state.stages.map((s, i) => stageCard(s, i, i === state.stage)));
  strip.classList.remove("stale");
  revealSelected();
  if (hadFocus) strip.querySelector(".selected .stage-pick")?.focus();
}

function renderDetail() {
  const s = state.stages[state.stage];
  detail.replaceChildren(
    el("strong", "", stageName(s, state.stage)),
    `: ${s.kind}, shape [${s.shape.join(", ")}] (${layoutName(s)}), ${s.dtype}, values ${fmt(s.min)} … ${fmt(s.max)}. Preview: ${s.display}.`,
  );
}

function histogramTraces(s) {
  const { edges, counts, channels } = s.histogram;
  const centres = edges.slice(0, -1).map((a, i) => (a + edges[i + 1]) / 2);
  const width = edges[1] - edges[0];
  return channels.map((channel, c) => ({
    type: "bar",
    x: centres,
    y: counts[c],
    name: channel,
    width,
    opacity: 0.55,
    marker: { color: CHANNEL_COLOURS[channel] || "#8172b3" },
    hovertemplate: `${channel}: %{y} values near %{x:.3g}<extra></extra>`,
  }));
}

// As app/viz/transforms.py value_axis.
const valueAxis = (s) => (s.kind === "image" ? `pixel value (${s.dtype}, 0–255)` : `tensor value (${s.dtype})`);

function drawHistogram() {
  const s = state.stages[state.stage];
  const layout = {
    ...baseLayout,
    title: { ...baseLayout.title, text: stageName(s, state.stage) },
    xaxis: { ...baseLayout.xaxis, title: { text: valueAxis(s) } },
  };
  return window.Plotly.react(plot, histogramTraces(s), layout, PLOT_CONFIG);
}

function writeUrl() {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) params.append(key, String(value).trim());
  history.replaceState(null, "", `${location.pathname}?${params}`);
}

// Scroll the strip (never the page) so the selected card is in view.
function revealSelected() {
  const wrap = strip.parentElement;
  const card = strip.querySelector(".stage-card.selected");
  if (!card) return;
  const left = card.offsetLeft - strip.offsetLeft;
  if (left < wrap.scrollLeft || left + card.offsetWidth > wrap.scrollLeft + wrap.clientWidth) {
    wrap.scrollLeft = Math.max(0, left - (wrap.clientWidth - card.offsetWidth) / 2);
  }
}

function select(index) {
  index = Math.max(0, Math.min(index, state.stages.length - 1));
  if (index === state.stage) return;
  state.stage = index;
  stageField.value = String(index);
  for (const card of strip.querySelectorAll(".stage-card[data-stage]")) {
    const on = Number(card.dataset.stage) === index;
    card.classList.toggle("selected", on);
    card.querySelector(".stage-pick").setAttribute("aria-pressed", String(on));
  }
  revealSelected();
  renderDetail();
  drawHistogram();
  writeUrl();
}

strip.addEventListener("click", (event) => {
  const card = event.target.closest(".stage-card[data-stage]");
  if (card) select(Number(card.dataset.stage));
});

// The transforms' own fields keep their arrow keys.
bindKeys(
  {
    ArrowLeft: () => (select(state.stage - 1), true),
    ArrowRight: () => (select(state.stage + 1), true),
  },
  { ignore: FIELDS },
);

// --- talking to the server -----------------------------------------------------------------------

// The stages on screen no longer match the pipeline when it fails: they are dimmed until it works.
function showPipelineError(message, stale = true) {
  state.error = message;
  showError(banner, message);
  if (message && stale) strip.classList.add("stale");
  // Our messages start "Stage N (name): ...": mark that transform in the editor.
  const failed = Number(/^Stage (\d+)\b/.exec(message)?.[1] || 0);
  for (const li of list.querySelectorAll(".pipe-item")) {
    li.classList.toggle("failed", Number(li.dataset.index) + 1 === failed);
  }
}

let pending = null;
let latest = 0;

async function apply() {
  const body = new FormData();
  body.append("pipeline", JSON.stringify(state.pipeline));
  if (state.file) body.append("file", state.file);
  else body.append("sample", sampleSelect.value);
  const ticket = ++latest;
  document.body.classList.add("applying");
  try {
    const response = await fetch("/api/transforms/apply", { method: "POST", body, headers: { Accept: "application/json" } });
    const answer = await response.json().catch(() => ({}));
    if (ticket !== latest) return; // a newer pipeline has been sent: its answer wins
    if (!response.ok) {
      showPipelineError(typeof answer.detail === "string" ? answer.detail : `The server answered ${response.status}.`);
      return;
    }
    state.stages = [answer.input, ...answer.stages];
    state.stage = Math.min(state.stage, state.stages.length - 1);
    stageField.value = String(state.stage);
    showPipelineError("");
    renderStages();
    renderDetail();
    await drawHistogram();
    strip.dataset.version = String(ticket); // lets a test wait for this answer
  } catch (error) {
    if (ticket === latest) showPipelineError(`Could not reach the server: ${error.message}`);
  } finally {
    if (ticket === latest) document.body.classList.remove("applying");
  }
}

function scheduleApply(delay = 120) {
  clearTimeout(pending);
  pending = setTimeout(apply, delay);
}

// lesson.js clears the banner when its partial arrives; an error of ours still stands.
document.addEventListener("lesson:updated", () => {
  if (state.error) showPipelineError(state.error, false);
});

upload.addEventListener("change", () => {
  const file = upload.files[0];
  if (!file) return;
  state.file = file;
  uploadNote.textContent = `Showing your picture, ${file.name}. It is not in the URL: a shared link or a reload shows the sample.`;
  useSample.hidden = false;
  scheduleApply(0);
});
useSample.addEventListener("click", () => {
  state.file = null;
  upload.value = "";
  uploadNote.textContent = SAMPLE_NOTE;
  useSample.hidden = true;
  scheduleApply(0);
});
sampleSelect.addEventListener("change", () => {
  if (state.file) useSample.click();
  else scheduleApply(0);
});

renderPipeline();
revealSelected();
if (state.error) showPipelineError(state.error, false); // the server drew the stages up to the failure
form.dataset.ready = "true";
