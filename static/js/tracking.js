// Tracking lesson: choosing runs, a metric, a run to describe or a class reloads the page (its
// panels depend on them); smoothing and the threshold update in place through lesson.js, from
// their sliders or the arrow keys. Runs still training are followed live (follow.js), so the
// charts grow while you watch.

import { bindKeys, showError, stepRange } from "./dom.js";
import { followRuns, launchRun } from "./follow.js";

const form = document.getElementById("controls");
const banner = document.getElementById("lesson-error");
const navigate = () => form.dispatchEvent(new CustomEvent("lesson:navigate"));
const EXAMPLE_RATES = [0.01, 0.05, 0.2];
const EXAMPLE_EPOCHS = 6;

for (const id of ["metric", "focus", "cls"]) {
  document.getElementById(id)?.addEventListener("change", navigate);
}
document.getElementById("runs").addEventListener("change", () => {
  const focus = document.getElementById("focus");
  if (focus) focus.value = "0"; // another set of runs: describe the first
  navigate();
});

document.getElementById("train-three").addEventListener("click", async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  showError(banner, "");
  try {
    const ids = [];
    for (const rate of EXAMPLE_RATES) {
      ids.push(await launchRun("digits-cnn", { learning_rate: rate, epochs: EXAMPLE_EPOCHS }));
    }
    document.getElementById("runs").value = ids.join(",");
    document.getElementById("focus").value = "0";
    navigate();
  } catch (error) {
    showError(banner, error.message);
    button.disabled = false;
  }
});

// Five slider steps a key press: left and right smooth, up and down move the threshold.
const smoothing = document.getElementById("smoothing");
const threshold = document.getElementById("threshold");
bindKeys({
  ArrowLeft: () => stepRange(smoothing, -5),
  ArrowRight: () => stepRange(smoothing, 5),
  ArrowUp: () => stepRange(threshold, 5),
  ArrowDown: () => stepRange(threshold, -5),
});

followRuns(form, "runs-readout");
