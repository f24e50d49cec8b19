// Training pipeline: step the epoch on screen (buttons, arrow keys), keep the epoch slider within
// the number of epochs, highlight the chosen stage's code, and launch the same training as a run.
// lesson.js does the updating (URL, partial, figures): this file only moves the epoch slider and
// lets its "input" event ask for the new view.

import { bindKeys, FIELDS, showError } from "./dom.js";

const form = document.getElementById("controls");
const slider = document.getElementById("epoch");
const epochsField = document.getElementById("epochs");
const banner = document.getElementById("lesson-error");

function goTo(epoch) {
  const last = Number(slider.max);
  const next = Math.min(Math.max(Math.round(epoch), 0), last);
  if (next === Number(slider.value)) return;
  slider.value = String(next);
  slider.dispatchEvent(new Event("input", { bubbles: true }));
}

const moves = {
  "epoch-first": () => 0,
  "epoch-prev": () => Number(slider.value) - 1,
  "epoch-next": () => Number(slider.value) + 1,
  "epoch-last": () => Number(slider.max),
};
for (const [id, move] of Object.entries(moves)) {
  document.getElementById(id)?.addEventListener("click", () => goTo(move()));
}

// Inputs (the slider and radios included) use the arrow keys themselves.
const stepTo = (epoch) => () => (goTo(epoch()), true);
bindKeys(
  {
    ArrowLeft: stepTo(() => Number(slider.value) - 1),
    ArrowRight: stepTo(() => Number(slider.value) + 1),
    Home: stepTo(() => 0),
    End: stepTo(() => Number(slider.max)),
  },
  { ignore: FIELDS },
);

// The slider runs from epoch 0 to the number of epochs: follow a new number before lesson.js
// reads the form (this listener is on the field, the form's own runs after it).
epochsField.addEventListener("input", () => {
  const epochs = Number(epochsField.value);
  if (!Number.isInteger(epochs) || epochs < 1) return; // the server names the bound
  slider.max = String(epochs);
  if (Number(slider.value) > epochs) slider.value = String(epochs);
  const out = form.querySelector('output[data-for="epoch"]');
  if (out) out.textContent = slider.value;
});

function highlightStage() {
  const stage = form.querySelector('input[name="stage"]:checked')?.value;
  for (const column of document.querySelectorAll(".tp-stage")) {
    const shared = column.dataset.stage === "shared" && stage !== "manual";
    column.classList.toggle("current", column.dataset.stage === stage || shared);
  }
}
form.addEventListener("change", (event) => {
  if (event.target.name === "stage") highlightStage();
});

function detailOf(body, status) {
  const detail = body && body.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return `The server answered ${status}.`;
}

const runButton = document.getElementById("train-run");
runButton.addEventListener("click", async () => {
  const config = {
    stage: form.querySelector('input[name="stage"]:checked')?.value || "nn",
    epochs: Number(epochsField.value),
    learning_rate: Number(document.getElementById("learning_rate").value),
    seed: Number(document.getElementById("seed").value),
  };
  runButton.disabled = true;
  try {
    const response = await fetch("/api/runs", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ task: "linear-regression", config }),
    });
    const body = await response.json().catch(() => null);
    if (!response.ok || !body || !body.id) {
      showError(banner, detailOf(body, response.status));
      return;
    }
    location.assign(`/runs/${encodeURIComponent(body.id)}`);
  } catch (error) {
    showError(banner, `Could not reach the server: ${error.message}`);
  } finally {
    runButton.disabled = false;
  }
});

form.dataset.ready = "true";
