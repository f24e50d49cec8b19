// Saving and loading: choose a run (the page reloads: its panels depend on it), train a small
// run, resume the chosen one (a new run from its checkpoint, which this page then follows live,
// follow.js), and upload any .pth to POST /api/checkpoints/inspect and /evaluate. The run, the
// epochs and the optimizer switch live in the URL; an uploaded file cannot. Text from files and
// from the server goes into the page through textContent only.

import { bindKeys, el, FIELDS, fmt, showError } from "./dom.js";
import { followRuns, launchRun } from "./follow.js";

const $ = (id) => document.getElementById(id);
const form = $("controls");
const banner = $("lesson-error");
const navigate = () => form.dispatchEvent(new CustomEvent("lesson:navigate"));

async function json(response) {
  const body = await response.json().catch(() => ({}));
  return body;
}

// --- the controls ----------------------------------------------------------------------------

$("run").addEventListener("change", navigate);

// The checkbox has no name: the hidden field writes on/off, so an unticked box is in the URL
// too. Its own listener runs before the form's (lesson.js), which then sends the new value.
const optimizerBox = $("optimizer-box");
optimizerBox.addEventListener("input", () => {
  $("optimizer").value = optimizerBox.checked ? "on" : "off";
});

function choose(runId, label) {
  const select = $("run");
  if (![...select.options].some((option) => option.value === runId)) {
    select.append(new Option(label, runId));
  }
  select.value = runId;
  navigate();
}

$("train-run").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  showError(banner, "");
  try {
    const id = await launchRun("digits-cnn", { epochs: 4 });
    choose(id, `${id} · digits-cnn · queued`);
  } catch (error) {
    showError(banner, error.message);
    button.disabled = false;
  }
});

function runStatus() {
  return $("run-status")?.dataset ?? null;
}

function syncResume() {
  const status = runStatus();
  $("resume").disabled = !(status && status.resumable === "yes");
}

$("resume").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  const status = runStatus();
  if (!status) return;
  button.disabled = true;
  showError(banner, "");
  const config = { epochs: Number($("epochs").value) };
  if (status.optimizerChoice === "yes") config.resume_optimizer = optimizerBox.checked;
  try {
    const response = await fetch("/api/runs", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ task: status.task, config, resume_from: $("run").value }),
    });
    const body = await json(response);
    if (!response.ok) throw new Error(body.detail || `The server answered ${response.status}.`);
    choose(body.id, `${body.id} · ${status.task} (resumed) · queued`);
  } catch (error) {
    showError(banner, error.message);
    syncResume();
  }
});

// Arrow keys: fewer or more epochs to resume (not while in a field). At a bound the key is left
// to the browser.
function stepEpochs(delta) {
  const input = $("epochs");
  const next = Math.min(Number(input.max), Math.max(Number(input.min), Number(input.value) + delta));
  if (String(next) === input.value) return false;
  input.value = String(next);
  input.dispatchEvent(new Event("input", { bubbles: true }));
  return true;
}
bindKeys({ ArrowLeft: () => stepEpochs(-1), ArrowRight: () => stepEpochs(1) }, { ignore: FIELDS });

document.addEventListener("lesson:updated", syncResume);
followRuns(form, "run-status");

// --- upload: inspect, then load and evaluate -----------------------------------------------------

let file = null; // the file chosen last: what "evaluate" sends

const shape = (s) => (s.length ? s.join(" × ") : "scalar");

function table(id, head, rows) {
  const wrap = el("div", "table-wrap");
  const tableEl = el("table", "values params");
  if (id) tableEl.id = id;
  const thead = el("thead");
  const headRow = el("tr");
  for (const h of head) headRow.append(el("th", "", h));
  thead.append(headRow);
  const tbody = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const cell of row) {
      const td = el("td");
      if (cell instanceof Node) td.append(cell);
      else td.textContent = String(cell);
      tr.append(td);
    }
    tbody.append(tr);
  }
  tableEl.append(thead, tbody);
  wrap.append(tableEl);
  return wrap;
}

function code(text) {
  return el("code", "", text);
}

function setting(value) {
  return value === null || value === undefined ? "–" : typeof value === "number" ? fmt(value) : String(value);
}

function showInspection(info) {
  const out = $("upload-result");
  const facts = el("p", "readout sv-facts");
  facts.id = "upload-facts";
  facts.append(
    el("span", "", `${file.name}: ${info.bytes} bytes`),
    el("span", "", `format ${info.format}`),
    el("span", "", `epoch ${info.epoch ?? "–"}`),
    el("span", "", `task ${info.task ?? "–"}`),
  );
  const rows = info.tensors.map((t) => [code(t.key), shape(t.shape), t.dtype, t.numel]);
  rows.push(["total", "", "", info.total_parameters]);
  const parts = [el("h3", "", "What the file holds"), facts, table("upload-tensors", ["key", "shape", "dtype", "numel"], rows)];
  const total = el("p", "muted", `${info.tensors.length} tensors, ${info.total_parameters} numbers in all.`);
  total.id = "upload-total";
  parts.push(total);
  if (info.optimizer) {
    parts.push(el("h3", "", "The optimizer's state_dict"));
    const groups = info.optimizer.param_groups.map((g, i) => {
      const shown = Object.entries(g)
        .filter(([key]) => key !== "params" && key !== "param_names")
        .map(([key, value]) => `${key}=${setting(value)}`)
        .join(", ");
      return [i, shown, g.params.join(", ")];
    });
    parts.push(table("upload-groups", ["group", "settings", "params"], groups));
    const buffers = info.optimizer.state.flatMap((s) => s.buffers.map((b) => [s.param, b.name, shape(b.shape), b.numel]));
    if (buffers.length) {
      parts.push(table("upload-buffers", ["param", "buffer", "shape", "numel"], buffers));
      parts.push(el("p", "muted", "State is keyed by parameter index, in the order of model.parameters()."));
    } else {
      parts.push(el("p", "muted", "No per-parameter state: plain SGD without momentum keeps none."));
    }
  }
  const others = Object.entries(info.other_keys || {});
  if (others.length) {
    const list = el("ul", "sv-other");
    for (const [key, what] of others) list.append(el("li", "", `${key}: ${what}`));
    parts.push(el("p", "", "Other keys:"), list);
  }
  const evaluated = el("div", "sv-evaluated");
  evaluated.id = "upload-evaluation";
  parts.push(evaluated);
  out.replaceChildren(...parts);
  if (info.task && [...$("upload-task").options].some((o) => o.value === info.task)) $("upload-task").value = info.task;
}

function showEvaluation(body) {
  const box = $("upload-evaluation");
  const line = el("p", "readout");
  line.append(el("span", "", `${body.task} model, load_state_dict, model.eval()`));
  if (body.accuracy !== null && body.accuracy !== undefined) {
    const correct = body.predicted.filter((p, i) => p === body.labels[i]).length;
    const strong = el("strong", "", `${fmt(body.accuracy * 100)}%`);
    strong.id = "upload-accuracy";
    const span = el("span", "", "held-out accuracy ");
    span.append(strong, ` (${correct} of ${body.n})`);
    line.append(span);
  }
  line.append(el("span", "", `loss ${setting(body.loss)}`));
  if (body.result && body.result.w !== undefined) line.append(el("span", "", `w = ${fmt(body.result.w)}, b = ${fmt(body.result.b)}`));
  box.replaceChildren(el("h3", "", "Loaded into a fresh model and evaluated"), line);
}

function showMismatch(body) {
  const box = $("upload-evaluation");
  const parts = [el("h3", "", "It does not fit the model")];
  const lists = [
    ["Missing keys (the model has them, the file does not)", body.missing],
    ["Unexpected keys (the file has them, the model does not)", body.unexpected],
  ];
  for (const [title, keys] of lists) {
    if (!keys || !keys.length) continue;
    const list = el("ul", "sv-keys");
    for (const key of keys) list.append(el("li", "", key));
    parts.push(el("p", "", title), list);
  }
  if (body.mismatched && body.mismatched.length) {
    parts.push(el("p", "", "Shapes that differ"));
    parts.push(table("upload-mismatched", ["key", "in the file", "in the model"], body.mismatched.map((m) => [code(m.key), shape(m.file), shape(m.model)])));
  }
  box.replaceChildren(...parts);
}

async function send(path, extra = {}) {
  const data = new FormData();
  data.append("file", file);
  for (const [key, value] of Object.entries(extra)) data.append(key, value);
  const response = await fetch(path, { method: "POST", body: data, headers: { Accept: "application/json" } });
  return { response, body: await json(response) };
}

$("upload-file").addEventListener("change", async (event) => {
  file = event.target.files[0] || null;
  $("upload-evaluate").disabled = true;
  $("upload-result").replaceChildren();
  showError(banner, "");
  if (!file) return;
  try {
    const { response, body } = await send("/api/checkpoints/inspect");
    if (!response.ok) {
      showError(banner, body.detail || `The server answered ${response.status}.`);
      return;
    }
    showInspection(body);
    $("upload-evaluate").disabled = false;
  } catch (error) {
    showError(banner, `Could not reach the server: ${error.message}`);
  }
});

$("upload-evaluate").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  if (!file) return;
  button.disabled = true;
  showError(banner, "");
  try {
    const task = $("upload-task").value;
    const { response, body } = await send("/api/checkpoints/evaluate", task ? { task } : {});
    if (!response.ok) {
      showError(banner, body.detail || `The server answered ${response.status}.`);
      if (body.missing || body.unexpected || body.mismatched) showMismatch(body);
      return;
    }
    showEvaluation(body);
  } catch (error) {
    showError(banner, `Could not reach the server: ${error.message}`);
  } finally {
    button.disabled = false;
  }
});
