// Activations lesson: the arrow keys switch the activation (left, right) and add or remove a layer
// of the vanishing-gradient network (up, down). lesson.js does the updating: a slider step fires
// the slider's own "input" event, a new radio asks through an event on the form.

import { bindKeys, stepRadio, stepRange } from "./dom.js";

const form = document.getElementById("controls");
const depth = document.getElementById("depth");

function switchActivation(delta) {
  if (!stepRadio(form, "name", delta)) return false;
  form.dispatchEvent(new CustomEvent("lesson:update", { detail: { delay: 0 } }));
  return true;
}

bindKeys({
  ArrowLeft: () => switchActivation(-1),
  ArrowRight: () => switchActivation(1),
  ArrowUp: () => stepRange(depth, 1),
  ArrowDown: () => stepRange(depth, -1),
});
