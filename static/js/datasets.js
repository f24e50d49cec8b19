// Datasets and DataLoaders: step through the loader's iterations in the browser.
// lesson.js updates the page from the controls form (the server's partial replaces the parts
// marked data-slot). This file steps through the batches the server embedded (no request per
// step): it lights up the batch's rows, fills the batch table, moves the marks on both figures,
// and writes the step into the form and the URL. Only numbers from the server reach the page,
// always through textContent.

import { bindKeys, el, FIELDS, fmt, writeUrl as writeFormUrl } from "./dom.js";

const form = document.getElementById("controls");
const output = document.getElementById("lesson-output");
const $ = (id) => document.getElementById(id);

const writeUrl = () => writeFormUrl(form);

const wine = JSON.parse($("wine-data").textContent); // {table: (178, 13), targets: (178,), features}
let steps = null; // {epochs: [[[row, ...], ...], ...], step, total, per_epoch}

function readSteps() {
  const node = $("steps-data");
  steps = node ? JSON.parse(node.textContent) : null;
}

// Step (from 1, over all epochs) -> the loop's epoch and i, and each row's state; as
// app/lessons/datasets.py step_view.
function stepView(step) {
  const epoch = Math.floor((step - 1) / steps.per_epoch);
  const i = (step - 1) % steps.per_epoch;
  const batches = steps.epochs[epoch];
  const state = new Array(wine.targets.length).fill("dropped");
  batches.forEach((rows, k) => {
    for (const row of rows) state[row] = k < i ? "seen" : k === i ? "batch" : "later";
  });
  return { epoch, i, rows: batches[i], state };
}

function batchRow(index) {
  const tr = el("tr");
  tr.dataset.row = String(index);
  const th = el("th", "", String(index));
  th.scope = "row";
  tr.append(th);
  for (const v of wine.table[index]) tr.append(el("td", "", fmt(v)));
  const target = wine.targets[index];
  tr.append(el("td", `ds-target c${target}`, String(target)));
  return tr;
}

function restyle(figId, x, y) {
  const div = $(figId);
  if (!div || !div.data || !window.Plotly) return; // not drawn yet: it is drawn with the URL's step
  window.Plotly.restyle(div, { x: [x], y: [y] }, [div.data.length - 1]);
}

function render(moveMarks = true) {
  if (!steps) return;
  const at = stepView(steps.step);
  const n = at.rows.length;
  $("step-label").textContent = `Step ${steps.step} of ${steps.total}`;
  const slider = $("step-slider");
  slider.max = String(steps.total);
  slider.value = String(steps.step);
  $("step-first").disabled = $("step-prev").disabled = steps.step <= 1;
  $("step-next").disabled = $("step-last").disabled = steps.step >= steps.total;
  const where = $("step-where");
  where.replaceChildren(
    "Epoch ",
    el("strong", "", String(at.epoch + 1)),
    ` of ${steps.epochs.length}, iteration `,
    el("strong", "", String(at.i + 1)),
    ` of ${steps.per_epoch}`,
  );
  $("loop-epoch").textContent = String(at.epoch);
  $("loop-i").textContent = String(at.i);
  $("inputs-shape").textContent = `(${n}, ${wine.features})`;
  $("labels-shape").textContent = `(${n},)`;
  for (const li of $("ds-rows").children) {
    const row = Number(li.dataset.row);
    li.className = `c${wine.targets[row]} ${at.state[row]}`;
  }
  const caption = $("batch-caption");
  caption.replaceChildren(
    "This batch: ",
    el("code", "", "inputs"),
    ` (${n}, ${wine.features}) float32 and `,
    el("code", "", "labels"),
    ` (${n},) int64, one row per sample`,
  );
  $("ds-batch").querySelector("tbody").replaceChildren(...at.rows.map(batchRow));
  if (moveMarks) {
    restyle("fig-assignment", at.rows, at.rows.map(() => at.epoch));
    restyle("fig-iterations", [steps.step], [n]);
  }
  $("step-field").value = String(steps.step);
}

function goTo(step) {
  if (!steps) return;
  const next = Math.min(Math.max(step, 1), steps.total);
  if (next === steps.step) return;
  steps.step = next;
  render();
  writeUrl();
}

// The stepper sits inside a part of the page that lesson.js replaces: listen above it.
output.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button || !steps) return;
  const moves = {
    "step-first": () => 1,
    "step-prev": () => steps.step - 1,
    "step-next": () => steps.step + 1,
    "step-last": () => steps.total,
  };
  if (moves[button.id]) goTo(moves[button.id]());
});
output.addEventListener("input", (event) => {
  if (event.target.id === "step-slider") goTo(Number(event.target.value));
});

// The keys step the loader (while the page has its batches); inputs, its slider too, keep theirs.
const moveStep = (to) => () => Boolean(steps) && (goTo(to()), true);
bindKeys(
  {
    ArrowLeft: moveStep(() => steps.step - 1),
    ArrowRight: moveStep(() => steps.step + 1),
    PageUp: moveStep(() => steps.step - steps.per_epoch),
    PageDown: moveStep(() => steps.step + steps.per_epoch),
    Home: moveStep(() => 1),
    End: moveStep(() => steps.total),
  },
  { ignore: FIELDS },
);

// After a control changed, the server's partial holds the new batches and its (clamped) step.
document.addEventListener("lesson:updated", () => {
  readSteps();
  render(false); // the server drew the marks at this step
  writeUrl();
});

readSteps();
render(false);
form.dataset.ready = "true";
