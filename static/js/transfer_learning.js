// Transfer learning lesson: the sliders set the examples per class and epochs of the runs the
// button launches (the sweep table marks the choice in place, through lesson.js); the three
// modes then train on the server and are followed live (follow.js). The arrow keys step the two
// sliders: left and right the examples, up and down the epochs.

import { bindKeys, showError, stepRange } from "./dom.js";
import { followRuns, launchRun } from "./follow.js";

const form = document.getElementById("controls");
const banner = document.getElementById("lesson-error");
const examples = document.getElementById("examples");
const epochs = document.getElementById("epochs");
const MODES = ["feature-extract", "finetune", "scratch"];

document.getElementById("runs").addEventListener("change", () => {
  form.dispatchEvent(new CustomEvent("lesson:navigate"));
});

document.getElementById("train-modes").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  showError(banner, "");
  const config = {
    examples_per_class: Number(examples.value),
    epochs: Number(epochs.value),
  };
  try {
    const ids = [];
    for (const mode of MODES) ids.push(await launchRun("transfer", { ...config, mode }));
    document.getElementById("runs").value = ids.join(",");
    form.dispatchEvent(new CustomEvent("lesson:navigate"));
  } catch (error) {
    showError(banner, error.message);
    button.disabled = false;
  }
});

bindKeys({
  ArrowLeft: () => stepRange(examples, -1),
  ArrowRight: () => stepRange(examples, 1),
  ArrowUp: () => stepRange(epochs, 1),
  ArrowDown: () => stepRange(epochs, -1),
});

followRuns(form, "transfer-readout");
