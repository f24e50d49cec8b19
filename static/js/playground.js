// The playground: any program stepped through as Python Tutor does, and what a PyTorch learner
// needs on top. The server rendered the program of the link into the editor; this script runs it
// through POST /api/tensors/run (steps "changes": what each statement changed) and draws each
// step from the trace with no further request: the call stack frame by frame (inside a call a
// step names each call's variables `name@depth`, depth 1 the outermost call, as in `stack`),
// objects marked when two names hold the same one (`ref`), a module as its layers, an optimizer
// as its groups; loops by iteration; any number plotted across the run; figures and files.
// A tensor's autograd graph at a step is the one thing asked for: POST /api/playground/graph.
// The link holds the program packed (CompressionStream "deflate-raw", base64url: the server
// reads it with app/web/code_url.py), the step and the lesson it came from.
// Learner text only ever reaches the page through textContent.
import { el, fmt, PLOT_CONFIG } from "./dom.js";
import { BlobUrls, downloadNotebook, editorKeys, fileItem, packProgram, save, Trace } from "./program.js";
import { displayName, drawFrames } from "./frames.js";

const data = JSON.parse(document.getElementById("playground-data").textContent);
const $ = (id) => document.getElementById(id);
const editor = $("code");
const gutter = $("gutter");
const MAX_SERIES_ELEMENTS = 16; // a tensor with more elements is not offered as a line plot
const LOOP_HEADER = /^(\s*)(for|while)\b.*:\s*(#.*)?$/;

const state = {
  code: data.form.code, // the program the trace is of (the editor may differ)
  from: data.form.from,
  answer: null, // the run's answer (API.md "Programs")
  refused: null, // the sandbox's 422: {message, line}
  trace: null,
  step: data.form.step || 1, // 1-based; the error, if any, is a last step of its own
  series: null, // {key, param} of the value plotted across the run
  seriesData: null, // its points: {xs: steps, ys: [values]}
  graph: null, // {key, step} of the graph shown
  depths: [], // the call depth of each recorded step (0 at the top level)
  loops: [], // the program's loops that ran: {line, text, end, runs, at}
};
const blobs = new BlobUrls();

const steps = () => (state.answer ? state.answer.steps : []);
const count = () => steps().length + (state.answer && state.answer.error ? 1 : 0);
const isErrorStep = (step) => Boolean(state.answer && state.answer.error) && step === count();
const clampStep = (step) => Math.min(Math.max(step, 1), Math.max(count(), 1));

// --- the link: the program packed into ?code= -------------------------------------------------

let packed = { code: null, text: "" };

async function linkQuery(step = state.step) {
  if (packed.code !== state.code) packed = { code: state.code, text: await packProgram(state.code) };
  const query = new URLSearchParams({ code: packed.text, step: String(step) });
  if (state.from) query.set("from", state.from);
  return query.toString();
}

let urlWrite = Promise.resolve();
function writeUrl() {
  urlWrite = urlWrite.then(async () => history.replaceState(null, "", `/playground?${await linkQuery()}`));
}

// --- derived from the trace: call depths and loops by iteration --------------------------------

function depthOf(step) {
  return step.stack ? step.stack.length - 1 : 0;
}

// Every `for`/`while` header of the program, with the last line of its body (by indentation).
function loopHeaders(lines) {
  const loops = [];
  lines.forEach((text, i) => {
    const match = LOOP_HEADER.exec(text);
    if (!match) return;
    const indent = match[1].length;
    let end = i + 1;
    for (let j = i + 1; j < lines.length; j++) {
      if (!lines[j].trim() || lines[j].trim().startsWith("#")) continue;
      if (lines[j].length - lines[j].trimStart().length <= indent) break;
      end = j + 1;
    }
    loops.push({ line: i + 1, text: text.trim(), end });
  });
  return loops;
}

// Each loop's runs (one per time the loop was entered) as the steps that began each iteration,
// and for every step the iteration it is in (0: outside the loop).
function indexLoops() {
  const all = steps();
  state.depths = all.map(depthOf);
  state.loops = [];
  for (const loop of loopHeaders(state.code.split("\n"))) {
    const runs = [];
    const at = new Int32Array(all.length); // at[i]: 1 + index into runs' flat list, 0 outside
    const flat = [];
    let run = null;
    let depth = 0;
    all.forEach((step, i) => {
      const d = state.depths[i];
      if (step.line === loop.line && LOOP_HEADER.test(`${step.source}`.split("\n")[0])) {
        if (!run || d !== depth) {
          run = [];
          runs.push(run);
          depth = d;
        }
        run.push(i);
        flat.push({ run: runs.length - 1, iteration: run.length });
      } else if (run && d <= depth && (step.line < loop.line || step.line > loop.end)) {
        run = null; // the loop was left: its next header starts a new run
      }
      at[i] = run ? flat.length : 0;
    });
    if (runs.length) state.loops.push({ ...loop, runs, at, flat });
  }
}

// --- stepping targets ---------------------------------------------------------------------------

function stepOver(step) {
  const all = steps();
  if (isErrorStep(step) || step >= all.length) return count();
  const depth = state.depths[step - 1];
  for (let i = step; i < all.length; i++) if (state.depths[i] <= depth) return i + 1;
  return count();
}

function stepOut(step) {
  const all = steps();
  if (isErrorStep(step) || step > all.length) return count();
  const depth = state.depths[step - 1];
  if (depth === 0) return step; // at the top level there is no call to step out of
  for (let i = step; i < all.length; i++) if (state.depths[i] < depth) return i + 1;
  return count();
}

// The next step at `line` after this one (from the start again when there is none after).
function runToLine(line) {
  const all = steps();
  const after = all.findIndex((s, i) => i >= state.step && s.line === line);
  const index = after >= 0 ? after : all.findIndex((s) => s.line === line);
  if (index < 0) {
    setCaption(`Line ${line} never ran${state.answer && state.answer.truncated ? " in the recorded steps" : ""}.`);
    return;
  }
  goTo(index + 1);
}

// The innermost loop the step is in, and its iteration (for PageUp/PageDown).
function innermostLoop(step) {
  let best = null;
  for (const loop of state.loops) {
    const at = loop.at[Math.min(step, steps().length) - 1];
    if (at && (!best || loop.line > best.loop.line)) best = { loop, entry: loop.flat[at - 1] };
  }
  return best;
}

function iterationStep(loop, runIndex, iteration) {
  const run = loop.runs[runIndex];
  return run[Math.min(Math.max(iteration, 1), run.length) - 1] + 1;
}

function nextIteration(delta) {
  const found = innermostLoop(state.step);
  if (!found) return;
  const { loop, entry } = found;
  const run = loop.runs[entry.run];
  const target = entry.iteration + delta;
  if (target < 1) return goTo(run[0] + 1);
  if (target > run.length) {
    const after = loop.at.findIndex((at, i) => i > run[run.length - 1] && at === 0);
    return goTo(after >= 0 ? after + 1 : count());
  }
  goTo(iterationStep(loop, entry.run, target));
}

// --- one step's view ----------------------------------------------------------------------------

function stepIndex(step) {
  // The recorded step shown: the error step shows the variables as the last recorded step left them.
  return isErrorStep(step) ? steps().length - 1 : step - 1;
}

function variablesAt(step) {
  if (!state.trace || count() === 0) return new Map();
  return state.trace.variablesAt(stepIndex(step));
}

// A number the run can plot from a Value: numbers, bools and tensors of at most a few elements.
function seriesValues(value, param) {
  if (!value) return null;
  if (param) value = value.kind === "module" ? (value.parameters || {})[param] : null;
  if (!value) return null;
  if (value.kind === "number") return [toNumber(value.value)];
  if (value.kind === "bool") return [value.value ? 1 : 0];
  if ((value.kind === "tensor" || value.kind === "ndarray") && value.values !== null && value.values !== undefined) {
    const flat = [value.values].flat(Infinity).map(toNumber);
    return flat.length <= MAX_SERIES_ELEMENTS ? flat : null;
  }
  return null;
}

const toNumber = (v) => (typeof v === "number" ? v : typeof v === "boolean" ? Number(v) : Number.NaN);

function plottable(value, param = null) {
  const values = seriesValues(value, param);
  return values !== null && values.length > 0;
}

// --- rendering ----------------------------------------------------------------------------------

function setCaption(text) {
  $("step-caption").textContent = text;
}

function renderListing(step) {
  const all = steps();
  const error = isErrorStep(step) ? state.answer.error : null;
  const current = error ? error.line : count() ? all[step - 1].line : null;
  const stack = error ? null : count() ? all[step - 1].stack : null;
  const callers = new Set((stack || []).slice(0, -1).map((frame) => frame.line));
  const refusedLine = state.refused ? state.refused.line : null;
  for (const li of $("listing").children) {
    const line = Number(li.dataset.line);
    li.classList.toggle("current", !error && line === current);
    li.classList.toggle("error", (error && line === current) || line === refusedLine);
    li.classList.toggle("caller", callers.has(line) && line !== current);
    if (line === current) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  }
  // Keep the marked line in view inside the listing, without scrolling the page.
  const listing = $("listing");
  const mark = listing.querySelector(".current, .error");
  if (mark && listing.scrollHeight > listing.clientHeight) {
    const top = mark.offsetTop - listing.offsetTop;
    if (top < listing.scrollTop || top + mark.offsetHeight > listing.scrollTop + listing.clientHeight) {
      listing.scrollTop = Math.max(top - listing.clientHeight / 3, 0);
    }
  }
}

function renderStepper(step) {
  const total = count();
  const slider = $("step-slider");
  slider.max = String(Math.max(total, 1));
  slider.value = String(step);
  slider.disabled = total === 0;
  $("step-label").textContent = total ? `Step ${step} of ${total}` : "No steps";
  const atStart = step <= 1;
  const atEnd = step >= total;
  // aria-disabled, not disabled: a control that reaches its end keeps the keyboard's focus.
  const off = (id, value) => $(id).setAttribute("aria-disabled", String(value));
  off("step-first", atStart);
  off("step-prev", atStart);
  off("step-next", atEnd);
  off("step-over", atEnd);
  off("step-out", atEnd || isErrorStep(step) || !state.depths[step - 1]);
  off("step-last", atEnd);
}

function renderCaption(step) {
  if (state.refused) return setCaption("The sandbox refused this program, so nothing ran.");
  if (!count()) return setCaption("Nothing to step through: the program ran no statement.");
  const error = $("step-error");
  if (isErrorStep(step)) {
    const e = state.answer.error;
    setCaption(`Line ${e.line} failed; the variables are as the step before left them.`);
    $("error-message").textContent = `line ${e.line}: ${e.message}`;
    $("error-hint").textContent = e.hint || "";
    $("error-hint").hidden = !e.hint;
    error.hidden = false;
    return;
  }
  error.hidden = true;
  const s = steps()[step - 1];
  const where = s.stack ? ` in ${s.stack[s.stack.length - 1].function}` : "";
  setCaption(`Line ${s.line}${where} just ran: ${s.source.split("\n")[0]}`);
}

function actionButton(label, title, onClick) {
  const button = el("button", "value-action", label);
  button.type = "button";
  button.title = title;
  button.addEventListener("click", onClick);
  return button;
}

// The buttons beside a value: plot it across the run, draw its autograd graph at this step.
function valueActions(key, value, param) {
  const buttons = [];
  if (plottable(param ? { kind: "module", parameters: { [param]: value } } : value, param)) buttons.push(plotButton(key, param));
  if (!param && value.kind === "tensor" && (value.grad_fn || value.requires_grad)) buttons.push(graphButton(key));
  return buttons;
}

function renderFrames(step) {
  const box = $("frames");
  if (!count()) {
    box.replaceChildren(el("p", "muted", state.refused ? "" : "No variables."));
    return;
  }
  const index = stepIndex(step);
  const recorded = steps()[index];
  drawFrames(box, variablesAt(step), recorded ? recorded.stack : null, {
    changed: isErrorStep(step) || !recorded ? new Set() : new Set(Object.keys(recorded.changes || {})),
    final: step === count() ? state.answer.final : null,
    actions: valueActions,
  });
}

function plotButton(key, param = null) {
  const label = param ? `${displayName(key)}.${param}` : displayName(key);
  const button = actionButton("Plot", `Plot ${label} across the run`, () => showSeries(key, param));
  button.classList.add("plot-button");
  button.dataset.key = param ? `${key}.${param}` : key;
  return button;
}

function graphButton(key) {
  const button = actionButton("Graph", `The autograd graph of ${displayName(key)} at this step`, () => showGraph(key));
  button.classList.add("graph-button");
  button.dataset.key = key;
  return button;
}

function renderStdout(step) {
  const out = $("stdout");
  if (!state.answer) return out.replaceChildren();
  const all = steps();
  const upto = isErrorStep(step) ? all.length : step;
  const before = all.slice(0, Math.max(upto - 1, 0)).map((s) => s.stdout).join("");
  const parts = [document.createTextNode(before)];
  const current = upto >= 1 && all[upto - 1] ? all[upto - 1].stdout : "";
  if (current && !isErrorStep(step)) parts.push(el("mark", "", current));
  else if (current) parts.push(document.createTextNode(current));
  if (step === count() && state.answer.stdout_after) {
    const after = el("span", "unrecorded", state.answer.stdout_after);
    after.title = "printed by the statements after the last recorded step";
    parts.push(after);
  }
  out.replaceChildren(...parts);
}

function renderLoops(step) {
  const box = $("loops");
  box.hidden = state.loops.length === 0;
  const index = Math.min(step, steps().length) - 1;
  box.replaceChildren(
    el("h3", "loops-title", "Loops, by iteration"),
    ...state.loops.map((loop) => {
      const row = el("div", "loop-row");
      row.dataset.line = String(loop.line);
      const at = index >= 0 ? loop.at[index] : 0;
      const entry = at ? loop.flat[at - 1] : null;
      // Outside the loop: its last run before this step (or its first).
      let runIndex = entry ? entry.run : 0;
      if (!entry) loop.runs.forEach((run, i) => run[0] <= index && (runIndex = i));
      const run = loop.runs[runIndex];
      const label = el("label", "loop-label");
      label.append(el("code", "", loop.text), el("span", "muted", ` · line ${loop.line}`));
      const input = el("input");
      input.type = "number";
      input.min = "1";
      input.max = String(run.length);
      input.value = entry ? String(entry.iteration) : "";
      input.placeholder = "–";
      input.className = "loop-iteration";
      input.setAttribute("aria-label", `Iteration of the loop at line ${loop.line}`);
      input.addEventListener("change", () => {
        const n = Number(input.value);
        if (Number.isInteger(n) && n >= 1) goTo(iterationStep(loop, runIndex, n));
      });
      const back = actionButton("◀", "Previous iteration", () => goTo(iterationStep(loop, runIndex, (entry ? entry.iteration : 1) - 1)));
      const forward = actionButton("▶", "Next iteration", () => goTo(iterationStep(loop, runIndex, (entry ? entry.iteration : 0) + 1)));
      const of = el("span", "muted", ` of ${run.length}${loop.runs.length > 1 ? ` (run ${runIndex + 1} of ${loop.runs.length})` : ""}`);
      const control = el("span", "loop-control");
      control.append("iteration ", back, input, forward, of);
      row.append(label, control);
      return row;
    }),
  );
}

function renderNotices() {
  const notices = [...((state.answer && state.answer.notices) || [])];
  if (state.answer && state.answer.truncated) notices.unshift(`Only the first ${steps().length} steps are recorded; the program ran to the end, and its final output is below the last step.`);
  $("notices").replaceChildren(...notices.map((n) => el("li", "", n)));
  $("sandbox-notices").hidden = notices.length === 0;
}

// The step a figure belongs to: the step after those recorded before it drew it.
function figureStep(figure) {
  const total = count();
  return total === 0 ? 0 : Math.min(Math.max(figure.step + 1, 1), total);
}

function renderOutputs() {
  blobs.releaseAll();
  const figures = (state.answer && state.answer.figures) || [];
  const files = (state.answer && state.answer.files) || [];
  $("figures").replaceChildren(
    ...figures.map((figure, i) => {
      const card = el("figure", "program-figure");
      card.dataset.step = String(figureStep(figure));
      const img = el("img");
      img.src = blobs.make(figure.png, "image/png");
      img.width = figure.width;
      img.height = figure.height;
      img.alt = `Figure ${i + 1}, drawn by line ${figure.line}`;
      const caption = el("figcaption", "", `Figure ${i + 1} · line ${figure.line} · `);
      caption.append(actionButton(`step ${figureStep(figure)}`, "Go to the step that drew it", () => goTo(figureStep(figure))));
      card.append(img, caption);
      return card;
    }),
  );
  $("program-figures").hidden = figures.length === 0;
  $("files").replaceChildren(...files.map((file) => fileItem(file, blobs)));
  $("program-files").hidden = files.length === 0;
}

function markFigures(step) {
  for (const card of $("figures").children) {
    const at = Number(card.dataset.step);
    card.classList.toggle("current", at === step);
    card.classList.toggle("later", at > step);
  }
}

function render() {
  const step = state.step;
  renderStepper(step);
  renderListing(step);
  renderCaption(step);
  renderFrames(step);
  renderStdout(step);
  renderLoops(step);
  markFigures(step);
  markSeries();
}

function goTo(step) {
  if (!count()) return;
  state.step = clampStep(step);
  render();
  writeUrl();
}

// --- a value across the run ---------------------------------------------------------------------

function seriesOf(key, param) {
  const xs = [];
  const ys = [];
  let last = null;
  steps().forEach((s, i) => {
    const changes = s.changes || {};
    if (!(key in changes)) return;
    const values = seriesValues(changes[key], param);
    if (!values) return;
    const text = JSON.stringify(values);
    if (text === last) return;
    last = text;
    xs.push(i + 1);
    ys.push(values);
  });
  return { xs, ys };
}

function showSeries(key, param = null) {
  state.series = { key, param };
  const { xs, ys } = (state.seriesData = seriesOf(key, param));
  const label = param ? `${displayName(key)}.${param}` : displayName(key);
  $("series-title").textContent = `${label} across the run`;
  $("series-panel").hidden = false;
  const width = ys.reduce((m, v) => Math.max(m, v.length), 0);
  const traces = [];
  for (let j = 0; j < width; j++) {
    traces.push({
      type: "scatter",
      mode: xs.length > 200 ? "lines" : "lines+markers",
      x: xs,
      y: ys.map((v) => (j < v.length ? v[j] : null)),
      name: width > 1 ? `${label}[${j}]` : label,
      hovertemplate: "step %{x}: %{y}<extra></extra>",
    });
  }
  traces.push({ type: "scatter", mode: "markers", x: [], y: [], name: "this step", marker: { size: 14, symbol: "circle-open", color: "#c44e52", line: { width: 3 } }, hoverinfo: "skip" });
  const layout = {
    margin: { l: 56, r: 16, t: 12, b: 44 },
    xaxis: { title: { text: "step" } },
    yaxis: { title: { text: label } },
    showlegend: width > 1,
    height: 300,
  };
  const plot = $("fig-series");
  window.Plotly.react(plot, traces, layout, PLOT_CONFIG).then(() => {
    if (!plot.dataset.bound) {
      plot.dataset.bound = "true";
      plot.on("plotly_click", (event) => event.points.length && goTo(event.points[0].x));
    }
    markSeries();
  });
  $("series-panel").scrollIntoView({ block: "nearest" });
}

// The ring on the plotted value at the step shown (the last change at or before it).
function markSeries() {
  if (!state.series || $("series-panel").hidden) return;
  const plot = $("fig-series");
  if (!plot.data) return;
  const { xs, ys } = state.seriesData;
  let i = -1;
  for (let j = 0; j < xs.length && xs[j] <= state.step; j++) i = j;
  const ring = plot.data.length - 1;
  window.Plotly.restyle(plot, { x: [i >= 0 ? [xs[i]] : []], y: [i >= 0 ? [ys[i][0]] : []] }, [ring]);
  plot.dataset.marked = i >= 0 ? String(xs[i]) : "";
}

// --- the autograd graph of a tensor at this step ------------------------------------------------

async function showGraph(key) {
  const step = state.step;
  state.graph = { key, step };
  const panel = $("graph-panel");
  panel.hidden = false;
  $("graph-title").textContent = `The autograd graph of ${displayName(key)} at step ${step}`;
  $("graph-note").textContent = "Asking the server…";
  panel.setAttribute("aria-busy", "true");
  try {
    const response = await fetch("/api/playground/graph", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code: state.code, step: isErrorStep(step) ? steps().length : step, root: key }),
    });
    const body = await response.json();
    if (state.graph.key !== key || state.graph.step !== step) return; // another one was asked for
    if (!response.ok) {
      $("graph-note").textContent = typeof body.detail === "string" ? body.detail : `The server answered ${response.status}.`;
      return;
    }
    $("graph-note").textContent = body.note;
    window.Plotly.react($("fig-graph"), body.figure.data, body.figure.layout, PLOT_CONFIG);
    $("graph-grads").replaceChildren(...body.grads.map((g) => el("li", "", `${g.name}.grad = ${g.text}`)));
  } catch (error) {
    $("graph-note").textContent = `Could not draw the graph: ${error.message}`;
  } finally {
    panel.removeAttribute("aria-busy");
    panel.scrollIntoView({ block: "nearest" });
  }
}

// --- running --------------------------------------------------------------------------------------

function syncGutter() {
  const lines = editor.value.split("\n").length;
  gutter.textContent = Array.from({ length: lines }, (_, i) => i + 1).join("\n");
  editor.rows = Math.max(lines + 1, 8);
}

function rebuildListing(code) {
  $("listing").replaceChildren(
    ...code.split("\n").map((text, i) => {
      const li = el("li");
      li.dataset.line = String(i + 1);
      const number = el("button", "ln", String(i + 1));
      number.type = "button";
      number.title = `Run to line ${i + 1}`;
      li.append(number, el("code", "", text));
      return li;
    }),
  );
}

let running = 0;

async function run(code, step = 1) {
  const ticket = ++running;
  const status = $("run-status");
  status.textContent = "Running on the server…";
  $("run").disabled = true;
  const started = performance.now();
  try {
    const response = await fetch("/api/tensors/run", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ code, steps: "changes" }),
    });
    const body = await response.json().catch(() => ({}));
    if (ticket !== running) return;
    state.code = code;
    rebuildListing(code);
    const message = $("program-message");
    if (!response.ok) {
      const detail = typeof body.detail === "string" ? body.detail : `The server answered ${response.status}.`;
      state.refused = { message: detail, line: Number((/^line (\d+)/.exec(detail) || [])[1]) || null };
      state.answer = null;
      state.trace = null;
      message.textContent = detail;
      message.hidden = false;
    } else {
      state.refused = null;
      state.answer = body;
      state.trace = new Trace(body.steps);
      message.hidden = true;
    }
    indexLoops();
    state.step = clampStep(step);
    renderNotices();
    renderOutputs();
    render();
    if (state.series) showSeries(state.series.key, state.series.param);
    writeUrl();
    performance.mark("playground:drawn");
    const ms = performance.now() - started;
    status.textContent = state.answer ? `Ran in ${(ms / 1000).toFixed(2)} s: ${count()} steps.` : "";
    document.body.dataset.runs = String(Number(document.body.dataset.runs || 0) + 1);
  } catch (error) {
    if (ticket !== running) return;
    status.textContent = `Could not run: ${error.message}`;
  } finally {
    if (ticket === running) $("run").disabled = false;
  }
}

// --- wiring -------------------------------------------------------------------------------------

$("program-form").addEventListener("submit", (event) => {
  event.preventDefault();
  run(editor.value);
});
editor.addEventListener("input", syncGutter);
editor.addEventListener("scroll", () => (gutter.scrollTop = editor.scrollTop));
editorKeys(editor, { run: () => run(editor.value), edited: syncGutter });

const CONTROLS = {
  "step-first": () => 1,
  "step-prev": () => state.step - 1,
  "step-next": () => state.step + 1,
  "step-over": () => stepOver(state.step),
  "step-out": () => stepOut(state.step),
  "step-last": () => count(),
};
for (const [id, target] of Object.entries(CONTROLS)) {
  $(id).addEventListener("click", () => $(id).getAttribute("aria-disabled") !== "true" && goTo(target()));
}
$("step-slider").addEventListener("input", (event) => goTo(Number(event.target.value)));
$("listing").addEventListener("click", (event) => {
  const number = event.target.closest(".ln");
  if (number) runToLine(Number(number.closest("li").dataset.line));
});

const KEYS = {
  ArrowLeft: () => goTo(state.step - 1),
  ArrowRight: () => goTo(state.step + 1),
  ArrowDown: () => goTo(stepOver(state.step)),
  ArrowUp: () => goTo(stepOut(state.step)),
  Home: () => goTo(1),
  End: () => goTo(count()),
  PageDown: () => nextIteration(1),
  PageUp: () => nextIteration(-1),
};
document.addEventListener("keydown", (event) => {
  if (event.altKey || event.ctrlKey || event.metaKey || !(event.key in KEYS)) return;
  if (event.target.closest("input, textarea, select, [contenteditable]")) return; // the field's own keys
  event.preventDefault();
  KEYS[event.key]();
});

$("download-py").addEventListener("click", () => save(new Blob([editor.value], { type: "text/x-python" }), "program.py"));
$("download-notebook").addEventListener("click", async () => {
  const button = $("download-notebook");
  const label = button.textContent;
  button.disabled = true;
  button.textContent = "Making the notebook…";
  const problem = await downloadNotebook(editor.value, state.from ? `Playground: from ${document.title}` : "Playground");
  button.disabled = false;
  button.textContent = label;
  button.focus();
  const message = $("program-message");
  if (problem) {
    message.textContent = problem;
    message.hidden = false;
  }
});
$("copy-link").addEventListener("click", async () => {
  const link = `${location.origin}/playground?${await linkQuery()}`;
  try {
    await navigator.clipboard.writeText(link);
    $("run-status").textContent = "Link copied.";
  } catch {
    $("run-status").textContent = link; // no clipboard permission: show it to copy by hand
  }
});

syncGutter();
run(editor.value, state.step);
document.body.dataset.ready = "true";
