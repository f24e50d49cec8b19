// Tensor basics: step through a program's trace in the browser, as Python Tutor does.
// The server rendered the first view and embedded the whole trace (what each statement changed:
// API.md "Programs", steps "changes"), so stepping needs no request: the variables of a step are
// rebuilt from the changes, from a saved state every CHECKPOINT steps. Run sends the edited code
// to POST /api/tensors/run.
// The heatmap is built by the server (app/viz/tensors.py heatmap, POST /api/tensors/heatmap) for
// each tensor Value the page draws; the answers are kept, and the next and previous steps' are
// asked for ahead, so stepping draws at once.
// The figures a program drew (PNGs) and the files it saved come with the answer as base64: they
// are shown as images marked at the step that drew them, and offered as Blob downloads.
// The editor's code downloads as program.py (a Blob), and as a notebook that POST /api/notebook
// writes from its own sandbox run (API.md "POST /api/notebook"), saved under the name it gives.
// The state lives in the URL: ?example=<name>[&code=<edited program>]&step=<n>[&var=<tensor>].
// Learner text only ever reaches the page through textContent.
import { el, PLOT_CONFIG } from "./dom.js";
import { applyStep, BlobUrls, downloadNotebook, editorKeys, fileItem, packProgram, save, Trace } from "./program.js";
import { drawFrames } from "./frames.js";
import { storageColour, valueCard } from "./values.js";

const data = JSON.parse(document.getElementById("tensors-data").textContent);
const examples = data.form.examples;
const URL_CODE_LIMIT = data.form.max_url_code_chars;
const ARRAY_KINDS = ["tensor", "ndarray"];
// Values the playground's frames draw as their parts (frames.js) rather than as one line of text.
const RICH_KINDS = new Set(["object", "module", "optimizer", "dataset", "dataloader"]);
const SHARED_NAMES_SHOWN = data.form.shared_names_shown;

const $ = (id) => document.getElementById(id);
const editor = $("code");
const gutter = $("gutter");
const plot = $("fig-heatmap");
const firstFigure = JSON.parse(plot.closest(".plot-wrap").querySelector("script.plot-data").textContent);

// The program that ran and its trace; `step` is 1-based, 0 when there is nothing to show.
const state = {
  example: data.form.example,
  code: data.result.code,
  steps: data.result.steps,
  error: data.result.error,
  refused: data.result.refused,
  truncated: data.result.truncated,
  notices: data.result.notices || [],
  stdoutAfter: data.result.stdout_after || "",
  final: data.result.final || null, // the variables the program ended with, when recording stopped early
  files: data.result.files || [], // [{name, bytes, base64, kind: "file" | "tensorboard"}]
  figures: data.result.figures || [], // [{step, line, png, width, height}]
  fromPage: true, // the server's run for the page, whose trace has a quarter of the answer budget
  step: data.result.step,
  variable: data.form.var, // the tensor the learner picked for the heatmap ("" = automatic)
};

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const isArray = (value) => value && ARRAY_KINDS.includes(value.kind);
const count = () => state.steps.length + (state.error ? 1 : 0);
const edited = () => state.code !== examples[state.example]?.code;

// --- every variable of a step, rebuilt from the changes (app/lessons/tensors.py apply_step) -------

let trace = new Trace([]);
const blobs = new BlobUrls(); // the Blob URLs of the answer shown, released when another replaces it
const variablesAt = (index) => trace.variablesAt(index);

// --- what one step shows (app/lessons/tensors.py step_view, in the browser) -----------------------

function sharedStorage(variables) {
  const groups = new Map();
  for (const [name, value] of variables) {
    if (!isArray(value) || !value.storage) continue;
    if (!groups.has(value.storage)) groups.set(value.storage, []);
    groups.get(value.storage).push(name);
  }
  return [...groups].filter(([, names]) => names.length > 1).map(([storage, names]) => ({ storage, names }));
}

function heatmapVariable(variables, changed, wanted) {
  const arrays = [...variables.keys()].filter((name) => isArray(variables.get(name)));
  if (arrays.includes(wanted)) return wanted;
  const changedArrays = changed.filter((name) => arrays.includes(name));
  if (changedArrays.length) return changedArrays[0];
  return arrays.length ? arrays[arrays.length - 1] : null;
}

function stepView(step) {
  const total = count();
  if (total === 0) return { step: 0, count: 0, index: null, line: null, isError: false, changed: [], variables: new Map(), before: new Map() };
  step = Math.min(Math.max(step, 1), total);
  const isError = Boolean(state.error) && step === total;
  const index = isError ? (state.steps.length ? state.steps.length - 1 : null) : step - 1;
  const before = index === null ? new Map() : variablesAt(index - 1);
  const variables = new Map(before);
  if (index !== null) applyStep(variables, state.steps[index]);
  // Only the step's own changes can differ from before (the others are the same Values).
  const changes = index === null || isError ? [] : Object.keys(state.steps[index].changes || {});
  const changed = changes.filter((name) => !same(before.get(name), variables.get(name)));
  const line = isError ? state.error.line : state.steps[step - 1].line;
  return { step, count: total, index, line, isError, changed, variables, before };
}

// --- rendering ---------------------------------------------------------------------------------

function listNames(names) {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]}`;
}

function renderListing(view) {
  const listing = $("listing");
  const badLine = view.isError ? view.line : state.refused?.line;
  listing.replaceChildren(
    ...state.code.split("\n").map((text, i) => {
      const n = i + 1;
      const li = el("li");
      li.dataset.line = String(n);
      if (n === badLine) li.className = "error";
      else if (n === view.line) li.className = "current";
      li.append(el("span", "ln", String(n)), el("code", "", text));
      return li;
    }),
  );
  if (state.code.endsWith("\n")) listing.lastChild?.remove(); // the newline ends the last line
  // Keep the marked line in view inside the listing, without scrolling the page.
  const marked = listing.querySelector(".current, .error");
  if (marked && listing.scrollHeight > listing.clientHeight) {
    const { offsetTop: top, offsetHeight: height } = marked;
    if (top < listing.scrollTop || top + height > listing.scrollTop + listing.clientHeight) {
      listing.scrollTop = top - listing.clientHeight / 2;
    }
  }
}

function renderCaption(view, current) {
  const caption = $("step-caption");
  caption.replaceChildren();
  if (state.refused) caption.textContent = "The sandbox refused this program, so nothing ran.";
  else if (view.count === 0) caption.textContent = "Nothing to step through: the program is empty.";
  else if (view.isError) caption.textContent = `Line ${view.line} failed; the variables are as the line before left them.`;
  else {
    caption.append(`Line ${view.line} just ran: `, el("code", "", current.source));
    if (view.changed.length) caption.append(` · changed: ${view.changed.join(", ")}`);
  }
  const error = $("step-error");
  error.hidden = !view.isError;
  error.textContent = view.isError ? `line ${state.error.line}: ${state.error.message}` : "";
}

function markChangedCells(card, before, value) {
  if (!isArray(before) || !same(before.shape, value.shape) || !before.values || !value.values) return;
  const grid = card.querySelector(":scope > table.grid, :scope > .slices");
  if (!grid) return;
  const old = [before.values].flat(Infinity);
  const now = [value.values].flat(Infinity);
  grid.querySelectorAll("td").forEach((td, i) => {
    if (!same(old[i], now[i])) td.classList.add("changed");
  });
}

function card(name, value, view, sharers, changed, label = name) {
  const node = valueCard(label, value, { changed: changed.has(name) });
  if (changed.has(name)) markChangedCells(node, view.before.get(name), value);
  const group = sharers.get(name);
  if (group) {
    const others = group.filter((other) => other !== name);
    const more = others.length > SHARED_NAMES_SHOWN ? ` and ${others.length - SHARED_NAMES_SHOWN} more` : "";
    node.querySelector(".value-head").append(el("span", "badge-chip shared", `shares memory with ${others.slice(0, SHARED_NAMES_SHOWN).join(", ")}${more}`));
  }
  return node;
}

function renderVariables(view) {
  const shared = sharedStorage(view.variables);
  $("shared-notes").replaceChildren(
    ...shared.map(({ storage, names }) => {
      const li = el("li");
      li.dataset.storage = storage;
      const swatch = el("span", "swatch");
      swatch.style.background = storageColour(storage);
      li.append(swatch, `${listNames(names)} share memory (storage ${storage}): change one and the other changes.`);
      return li;
    }),
  );
  const sharers = new Map(shared.flatMap(({ names }) => names.map((name) => [name, names])));
  const changed = new Set(view.changed);
  // Inside a call, or with objects, modules or optimizers: the playground's frames (frames.js),
  // each tensor still drawn as this page's card.
  const step = view.index === null ? null : state.steps[view.index];
  const values = [...view.variables.values()];
  if ((step && step.stack) || [...view.variables.keys()].some((k) => k.includes("@")) || values.some((v) => RICH_KINDS.has(v.kind))) {
    drawFrames($("variables"), view.variables, step ? step.stack : null, {
      changed,
      final: view.step === count() ? state.final : null,
      card: (label, value, { key }) => card(key, value, view, sharers, changed, label),
    });
    return;
  }
  const cards = [...view.variables].map(([name, value]) => card(name, value, view, sharers, changed));
  $("variables").replaceChildren(...(cards.length ? cards : [el("p", "muted", "No variables yet.")]));
}

function renderStdout(view) {
  const shown = view.index === null ? 0 : view.index + 1;
  const upTo = view.isError ? shown : shown - 1;
  const before = state.steps.slice(0, Math.max(upTo, 0)).map((s) => s.stdout).join("");
  const own = !view.isError && view.index !== null ? state.steps[view.index].stdout : "";
  const out = $("stdout");
  out.replaceChildren(before);
  if (own) out.append(el("mark", "", own));
  if (view.step === view.count && state.stdoutAfter) {
    const after = el("span", "unrecorded", state.stdoutAfter);
    after.title = "printed by the statements after the last recorded step";
    out.append(after);
  }
}

function renderNotices() {
  $("sandbox-notices").hidden = state.notices.length === 0;
  $("truncated-note").hidden = !state.truncated;
  $("notices").replaceChildren(...state.notices.map((notice) => el("li", "", notice)));
  $("budget-note").hidden = !state.fromPage || !state.notices.some((notice) => notice.includes("max_answer_bytes"));
}

// --- the figures the program drew and the files it saved ------------------------------------------

// The step a figure belongs to: the statement that drew it is the step after those recorded
// before it (API.md "Programs"); one drawn after recording stopped goes with the last step.
function figureStep(figure) {
  const total = count();
  return total === 0 ? 0 : Math.min(Math.max(figure.step + 1, 1), total);
}

const drawnUnrecorded = (figure) => figure.step + 1 > count();

function lineText(line) {
  return (state.code.split("\n")[line - 1] || "").trim();
}

function figureCard(figure, i) {
  const step = figureStep(figure);
  const card = el("figure", "program-figure");
  card.dataset.step = String(step);
  const img = el("img");
  img.src = blobs.make(figure.png, "image/png");
  img.width = figure.width;
  img.height = figure.height;
  const source = lineText(figure.line);
  img.alt = `Figure ${i + 1}, drawn by line ${figure.line}${source ? `: ${source}` : ""}`;
  const caption = el("figcaption");
  caption.append(`Figure ${i + 1} · line ${figure.line}`);
  if (step) {
    caption.append(" · ");
    if (drawnUnrecorded(figure)) caption.append("after ");
    const link = el("a", "figure-step", `step ${step}`);
    link.href = `${location.pathname}?${query(step)}`;
    link.title = `Go to step ${step}, which drew it`;
    link.addEventListener("click", (event) => {
      if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
      event.preventDefault();
      goTo(step);
    });
    caption.append(link);
  }
  card.append(img, caption);
  return card;
}

// Drawn once per answer; stepping only moves the highlight (markFigures).
function renderOutputs() {
  blobs.releaseAll();
  $("figures").replaceChildren(...state.figures.map(figureCard));
  $("program-figures").hidden = state.figures.length === 0;
  $("files").replaceChildren(...state.files.map((file) => fileItem(file, blobs)));
  $("program-files").hidden = state.files.length === 0;
}

// The figure the step drew is highlighted, those drawn later are dimmed; each one's step link
// keeps the page's current state (its code, the tensor picked).
function markFigures(view) {
  for (const card of $("figures").children) {
    const step = Number(card.dataset.step);
    const drawnHere = step !== 0 && step === view.step;
    card.classList.toggle("current", drawnHere);
    card.classList.toggle("later", step > view.step);
    if (drawnHere) card.setAttribute("aria-current", "step");
    else card.removeAttribute("aria-current");
    const link = card.querySelector(".figure-step");
    if (link) link.href = `${location.pathname}?${query(step)}`;
  }
}

// --- the heatmap: drawn from the server's figure -------------------------------------------------

const NO_TENSOR = {}; // the cache's key for a step with no tensor to draw
const heatmaps = new WeakMap(); // Value -> Map(name -> Promise of the server's figure)
let heatmapTicket = 0;

// The server's heatmap of `value` under `name` (only what the figure needs is sent).
function heatmapOf(name, value) {
  const key = value ?? NO_TENSOR;
  if (!heatmaps.has(key)) heatmaps.set(key, new Map());
  const byName = heatmaps.get(key);
  const label = name ?? "";
  if (!byName.has(label)) {
    const body = value ? { name, value: { kind: value.kind, shape: value.shape, dtype: value.dtype, values: value.values ?? null } } : { name: null, value: null };
    const answer = fetch("/api/tensors/heatmap", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    }).then(async (response) => {
      const json = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(json.detail || `The server answered ${response.status}.`);
      return json.figure;
    });
    answer.catch(() => byName.delete(label)); // a failed answer is asked for again next time
    byName.set(label, answer);
  }
  return byName.get(label);
}

// What step `step` draws: the tensor's name and Value.
function drawnAt(step) {
  const view = stepView(step);
  const name = heatmapVariable(view.variables, view.changed, state.variable);
  return { name, value: name ? view.variables.get(name) : null };
}

// The server's figure for the page's own first view is already on the page.
function keepFirstFigure() {
  const { name, value } = drawnAt(state.step);
  if (name !== data.result.variable) return;
  const key = value ?? NO_TENSOR;
  heatmaps.set(key, new Map([[name ?? "", Promise.resolve(firstFigure)]]));
}

function renderHeatmap(view) {
  const name = heatmapVariable(view.variables, view.changed, state.variable);
  const select = $("heatmap-var");
  const arrays = [...view.variables.keys()].filter((n) => isArray(view.variables.get(n)));
  select.replaceChildren(
    ...arrays.map((n) => {
      const option = el("option", "", n);
      option.value = n;
      option.selected = n === name;
      return option;
    }),
  );
  select.disabled = arrays.length === 0;
  const mine = ++heatmapTicket;
  heatmapOf(name, name ? view.variables.get(name) : null).then(
    (figure) => {
      if (mine !== heatmapTicket || !window.Plotly) return; // the learner has moved on: newest wins
      window.Plotly.react(plot, figure.data, figure.layout, PLOT_CONFIG);
    },
    (error) => {
      if (mine !== heatmapTicket) return;
      const message = $("program-message"); // the next step hides it again, and asks once more
      message.textContent = `Could not draw the heatmap: ${error.message}`;
      message.hidden = false;
    },
  );
  // Ask for the neighbouring steps' figures now, so the arrow keys draw them at once.
  for (const next of [view.step + 1, view.step - 1]) {
    if (next < 1 || next > view.count) continue;
    const ahead = drawnAt(next);
    heatmapOf(ahead.name, ahead.value).catch(() => {});
  }
}

function renderStepper(view) {
  const slider = $("step-slider");
  slider.max = String(Math.max(view.count, 1));
  slider.value = String(Math.max(view.step, 1));
  slider.disabled = view.count === 0;
  $("step-label").textContent = `Step ${view.step} of ${view.count}`;
  const targets = { "step-first": 1, "step-prev": view.step - 1, "step-next": view.step + 1, "step-last": view.count };
  for (const [id, target] of Object.entries(targets)) {
    const link = $(id);
    const off = view.count === 0 || target < 1 || target > view.count || target === view.step;
    link.setAttribute("aria-disabled", String(off));
    link.href = `${location.pathname}?${query(Math.min(Math.max(target, 1), Math.max(view.count, 1)))}`;
  }
}

function render() {
  const view = stepView(state.step);
  state.step = view.step;
  const current = view.index !== null && !view.isError ? state.steps[view.index] : null;
  renderStepper(view);
  renderListing(view);
  renderCaption(view, current);
  renderVariables(view);
  renderStdout(view);
  renderHeatmap(view);
  renderNotices();
  markFigures(view);
  pointPlayground();
  const message = $("program-message");
  message.hidden = !state.refused;
  message.textContent = state.refused ? state.refused.message : "";
}

let snippetCode = data.result.code; // the program the "Try it yourself" block shows

function renderProgramInfo() {
  const example = examples[state.example];
  $("explanation-title").textContent = edited() ? `Your edit of: ${example.title}` : example.title;
  $("explanation").textContent = example.explanation;
  for (const link of document.querySelectorAll(".example-link")) {
    if (link.dataset.example === state.example && !edited()) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
  }
  if (state.code !== snippetCode) {
    // Plain text: the server's highlighted copy is for the program it rendered.
    const pre = el("pre");
    pre.append(el("code", "", `import numpy as np\nimport torch\n\n${state.code}`));
    const block = el("div", "code");
    block.append(pre);
    $("snippet").replaceChildren(block);
    snippetCode = state.code;
  }
  form().example.value = state.example;
  noteEdits();
}

// --- the URL -------------------------------------------------------------------------------------

function query(step = state.step) {
  const params = new URLSearchParams({ example: state.example });
  const note = $("url-note");
  if (edited()) {
    const encoded = encodeURIComponent(state.code).length;
    if (encoded <= URL_CODE_LIMIT) {
      params.set("code", state.code);
      note.hidden = true;
    } else {
      note.textContent =
        `Your program is ${encoded} characters once written into the address bar, over the limit ` +
        `of ${URL_CODE_LIMIT}: a link to this page opens the example, not your edit. ` +
        "Copy the code itself to share it.";
      note.hidden = false;
    }
  } else {
    note.hidden = true;
  }
  if (state.variable) params.set("var", state.variable);
  params.set("step", String(step));
  return params.toString();
}

function pointTwin(q) {
  const twin = $("json-twin");
  if (twin) twin.href = `${twin.pathname}?${q}`;
}

function writeUrl() {
  const q = query();
  history.replaceState(null, "", `${location.pathname}?${q}`);
  pointTwin(q);
}

// --- stepping and running ------------------------------------------------------------------------

// The playground link: this program at this step (its steps are the same as this page's).
let playgroundLink = Promise.resolve();
function pointPlayground() {
  const { code, step } = state;
  playgroundLink = playgroundLink.then(async () => {
    const query = new URLSearchParams({ code: await packProgram(code), step: String(Math.max(step, 1)), from: "tensors" });
    $("lesson-step-through").href = `/playground?${query}`;
  });
}

function goTo(step) {
  const total = count();
  if (total === 0) return;
  const next = Math.min(Math.max(step, 1), total);
  if (next === state.step) return;
  state.step = next;
  render();
  writeUrl();
}

const form = () => $("program-form");

function matchingExample(code) {
  if (examples[state.example]?.code === code) return state.example;
  return Object.keys(examples).find((name) => examples[name].code === code) ?? state.example;
}

let ticket = 0;

async function run(code, example = matchingExample(code)) {
  const mine = ++ticket;
  const runButton = $("run");
  runButton.disabled = true;
  document.body.classList.add("running");
  let outcome;
  try {
    const response = await fetch("/api/tensors/run", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ code, steps: "changes" }),
    });
    const body = await response.json().catch(() => ({}));
    outcome = { status: response.status, body };
  } catch (error) {
    outcome = { status: 0, body: { detail: `Could not reach the server: ${error.message}` } };
  } finally {
    if (mine === ticket) {
      runButton.disabled = false;
      document.body.classList.remove("running");
    }
  }
  if (mine !== ticket) return; // a newer run was started: its answer wins
  const { status, body } = outcome;
  if (status !== 200 && status !== 422) {
    // Busy, too large, unreachable: keep the old trace and say why.
    const message = $("program-message");
    message.textContent = body.detail || `The server answered ${status}.`;
    message.hidden = false;
    return;
  }
  Object.assign(state, {
    example,
    code,
    steps: status === 200 ? body.steps : [],
    error: status === 200 ? body.error : null,
    refused: status === 422 ? { line: body.line ?? null, message: body.detail || "The sandbox refused this program." } : null,
    truncated: status === 200 && Boolean(body.truncated),
    notices: status === 200 ? body.notices || [] : [],
    stdoutAfter: status === 200 ? body.stdout_after || "" : "",
    final: status === 200 ? body.final || null : null,
    files: status === 200 ? body.files || [] : [],
    figures: status === 200 ? body.figures || [] : [],
    fromPage: false,
    step: 1,
    variable: "",
  });
  trace = new Trace(state.steps);
  renderProgramInfo();
  renderOutputs();
  render();
  writeUrl();
}

function noteEdits() {
  const dirty = editor.value !== state.code;
  $("edit-note").textContent = dirty
    ? "You changed the code: press Run to step through your version."
    : "Edit the code, then Run it to step through your version.";
  $("edit-note").classList.toggle("dirty", dirty);
}

function syncGutter() {
  const lines = Math.max(editor.value.split("\n").length, 1);
  gutter.textContent = Array.from({ length: lines }, (_, i) => i + 1).join("\n");
  editor.rows = Math.max(lines + 1, 6);
  gutter.scrollTop = editor.scrollTop;
}

// --- take the program home: the editor's code as a .py, or as a notebook the server writes -------

const notebookButton = $("download-notebook");
const NOTEBOOK_LABEL = notebookButton.textContent;

function downloadPy() {
  save(new Blob([editor.value], { type: "text/x-python" }), "program.py");
}

// The notebook of the code in the editor (run or not); the example's title names an unedited one.
async function saveNotebook() {
  const code = editor.value;
  const example = examples[matchingExample(code)];
  const title = example && example.code === code ? example.title : null;
  const message = $("program-message");
  const hadFocus = document.activeElement === notebookButton; // disabling it drops the focus
  notebookButton.disabled = true;
  notebookButton.setAttribute("aria-busy", "true");
  notebookButton.textContent = "Making the notebook…";
  const problem = await downloadNotebook(code, title);
  if (problem) {
    message.textContent = problem;
    message.hidden = false;
  } else {
    // The banner goes back to what the run shown says (a notebook's refusal no longer applies).
    message.hidden = !state.refused;
    message.textContent = state.refused ? state.refused.message : "";
  }
  notebookButton.disabled = false;
  notebookButton.removeAttribute("aria-busy");
  notebookButton.textContent = NOTEBOOK_LABEL;
  if (hadFocus && (!document.activeElement || document.activeElement === document.body)) notebookButton.focus();
}

// --- wiring --------------------------------------------------------------------------------------

form().addEventListener("submit", (event) => {
  event.preventDefault();
  run(editor.value);
});

editor.addEventListener("input", () => {
  syncGutter();
  noteEdits();
});
editor.addEventListener("scroll", () => (gutter.scrollTop = editor.scrollTop));
editorKeys(editor, {
  run: () => run(editor.value),
  edited: () => {
    syncGutter();
    noteEdits();
  },
});

for (const link of document.querySelectorAll(".example-link")) {
  link.addEventListener("click", (event) => {
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    const name = link.dataset.example;
    editor.value = examples[name].code;
    syncGutter();
    run(examples[name].code, name);
  });
}

const stepButtons = {
  "step-first": () => 1,
  "step-prev": () => state.step - 1,
  "step-next": () => state.step + 1,
  "step-last": () => count(),
};
for (const [id, target] of Object.entries(stepButtons)) {
  $(id).addEventListener("click", (event) => {
    if (event.button !== 0 || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    goTo(target());
  });
}

$("download-py").addEventListener("click", downloadPy);
notebookButton.addEventListener("click", saveNotebook);
$("take-home").hidden = false;

$("step-slider").addEventListener("input", (event) => {
  event.stopPropagation();
  goTo(Number(event.target.value));
});

$("heatmap-var").addEventListener("change", (event) => {
  state.variable = event.target.value;
  renderHeatmap(stepView(state.step));
  writeUrl();
});

const KEYS = { ArrowLeft: () => state.step - 1, ArrowRight: () => state.step + 1, Home: () => 1, End: () => count() };
document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey || !(event.key in KEYS)) return;
  if (event.target.closest("input, textarea, select, [contenteditable]")) return; // the field's own keys
  event.preventDefault();
  goTo(KEYS[event.key]());
});

syncGutter();
trace = new Trace(state.steps);
keepFirstFigure();
renderProgramInfo();
renderOutputs();
render();
pointTwin(query()); // the address bar is left as the learner typed it until they step
form().dataset.ready = "true"; // the script has taken over: stepping and Run stay on this page
