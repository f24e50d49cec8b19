// Gradient calculation: replay backward one node at a time with no round trip per step, and run
// the learner's program. lesson.js does the in-place updates; this file asks for them through
// events on the form. The replay's data travels in the graph figure (layout.meta.replay), so it
// is always the one the figure was drawn from.

import { bindKeys, FIELDS } from "./dom.js";

const form = document.getElementById("controls");
const output = document.getElementById("lesson-output");
const stepInput = document.getElementById("step");
const program = document.getElementById("program");
const example = document.getElementById("example");
const runButton = document.getElementById("run-program");

// Typed code is committed by Run (or Ctrl+Enter), not by each keystroke: the textarea hands its
// name to a hidden field holding the program the page shows. Without JS the textarea submits.
const committed = document.createElement("input");
committed.type = "hidden";
committed.name = "code";
committed.value = program.value;
committed.disabled = program.dataset.custom !== "true"; // an example needs no code in the URL
form.append(committed);
program.removeAttribute("name");

function queryString(step = null) {
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) params.append(key, String(value).trim());
  if (step !== null) params.set("step", String(step));
  return params.toString();
}

function writeUrl() {
  const query = queryString();
  history.replaceState(null, "", `${location.pathname}?${query}`);
  const twin = document.getElementById("json-twin");
  if (twin) twin.href = `${twin.pathname}?${query}`;
}

const navigate = () => form.dispatchEvent(new CustomEvent("lesson:navigate"));
const update = () => form.dispatchEvent(new CustomEvent("lesson:update"));

function run() {
  const text = program.value;
  const unchanged = program.dataset.custom !== "true" && text === program.defaultValue;
  committed.value = text;
  committed.disabled = unchanged;
  if (!unchanged) document.getElementById("backward").disabled = true; // it picks its own output
  stepInput.value = "0";
  navigate();
}

runButton.addEventListener("click", (event) => {
  event.preventDefault(); // not lesson.js's in-place submit: a new program changes the page
  run();
});
program.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    run();
  }
});
example.addEventListener("change", () => {
  if (example.value === "custom") return;
  committed.disabled = true;
  document.getElementById("backward").disabled = true;
  stepInput.value = "0";
  navigate();
});

// ---- the backward replay ----

function replayData() {
  const script = output.querySelector('[data-slot="fig-graph"] script.plot-data');
  return script ? JSON.parse(script.textContent).layout.meta.replay : null;
}

function currentStep() {
  return Number(stepInput.value) || 0;
}

function drawStep(data, step) {
  const div = document.getElementById("fig-graph");
  if (!div || !div.data || !window.Plotly) return;
  const { colours, traces } = data;
  const fill = data.function_step.map((s) => {
    if (s === step) return colours.current;
    return s > 0 && s < step ? colours.done : colours.waiting;
  });
  const text = data.tensor_step.map((s, i) => data.tensor_text[s > 0 && s <= step ? 1 : 0][i]);
  const spot = data.current[step];
  window.Plotly.restyle(div, { "marker.color": [fill] }, [traces.functions]);
  window.Plotly.restyle(div, { text: [text] }, [traces.tensors]);
  window.Plotly.restyle(div, { x: [spot ? [spot[0]] : []], y: [spot ? [spot[1]] : []] }, [traces.current]);
}

function showPanel(step, steps) {
  const replay = output.querySelector('[data-slot="replay"]');
  if (!replay) return;
  for (const panel of replay.querySelectorAll(".replay-step")) {
    panel.hidden = Number(panel.dataset.step) !== step;
  }
  replay.querySelector("#replay-slider").value = String(step);
  replay.querySelector("#replay-label").textContent = `Step ${step} of ${steps}`;
  const targets = { first: 0, prev: step - 1, next: step + 1, last: steps };
  for (const link of replay.querySelectorAll("a[data-go]")) {
    const target = Math.max(0, Math.min(steps, targets[link.dataset.go]));
    link.href = `${location.pathname}?${queryString(target)}`;
    link.setAttribute("aria-disabled", String(target === step));
  }
}

function setStep(wanted) {
  const data = replayData();
  if (!data) return;
  const step = Math.max(0, Math.min(data.steps, wanted));
  stepInput.value = String(step);
  writeUrl();
  drawStep(data, step);
  showPanel(step, data.steps);
}

output.addEventListener("click", (event) => {
  const link = event.target.closest('[data-slot="replay"] a[data-go]');
  if (!link) return;
  event.preventDefault();
  const data = replayData();
  const step = currentStep();
  const targets = { first: 0, prev: step - 1, next: step + 1, last: data ? data.steps : 0 };
  setStep(targets[link.dataset.go]);
});

output.addEventListener("input", (event) => {
  if (event.target.id === "replay-slider") setStep(Number(event.target.value));
});

// The backward select lives beside the program (its slot is replaced by updates): a new output
// replays from the start.
output.addEventListener("change", (event) => {
  if (event.target.id !== "backward") return;
  stepInput.value = "0";
  update();
});

// An in-place update drew the step its request carried; a key pressed meanwhile moved on.
document.addEventListener("lesson:updated", () => setStep(currentStep()));

// The arrow keys step the replay; inputs (the program, the step slider) keep theirs.
const stepBy = (delta) => (setStep(currentStep() + delta), true);
bindKeys({ ArrowLeft: () => stepBy(-1), ArrowRight: () => stepBy(1) }, { ignore: FIELDS });
