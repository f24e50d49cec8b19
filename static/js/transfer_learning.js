// Transfer learning lesson: the sliders set the examples per class and epochs of the runs the
// button launches (the sweep table marks the choice in place, through lesson.js); the three
// modes then train on the server and are followed live (follow.js).

import { followRuns, launchRun } from "./follow.js";

const form = document.getElementById("controls");
const banner = document.getElementById("lesson-error");
const MODES = ["feature-extract", "finetune", "scratch"];

function showError(message) {
  banner.textContent = message;
  banner.hidden = !message;
}

document.getElementById("runs").addEventListener("change", () => {
  form.dispatchEvent(new CustomEvent("lesson:navigate"));
});

document.getElementById("train-modes").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  showError("");
  const config = {
    examples_per_class: Number(document.getElementById("examples").value),
    epochs: Number(document.getElementById("epochs").value),
  };
  try {
    const ids = [];
    for (const mode of MODES) ids.push(await launchRun("transfer", { ...config, mode }));
    document.getElementById("runs").value = ids.join(",");
    form.dispatchEvent(new CustomEvent("lesson:navigate"));
  } catch (error) {
    showError(error.message);
    button.disabled = false;
  }
});

followRuns(form, "transfer-readout");
