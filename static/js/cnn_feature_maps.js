// CNN feature maps: step through the held-out digits (buttons, ← →, a digit to jump to, a click
// on a small picture) and through the channels (↑ ↓, a click on a channel's name). lesson.js does
// the updating (URL, partial, figures) from the controls form; this file only moves the controls
// and lets their events ask for the new view. Another model or layer reloads the page: the
// channel list and the figures' layout depend on them.

import { bindKeys, FIELDS } from "./dom.js";

const form = document.getElementById("controls");
const output = document.getElementById("lesson-output");
const image = document.getElementById("fm-image");
const channel = document.getElementById("fm-channel");
const digit = document.getElementById("fm-digit");
const navigate = () => form.dispatchEvent(new CustomEvent("lesson:navigate"));

function goToImage(index) {
  const next = Math.min(Math.max(Math.round(index), Number(image.min)), Number(image.max));
  if (next === Number(image.value)) return false;
  image.value = String(next);
  image.dispatchEvent(new Event("input", { bubbles: true }));
  return true;
}

function goToChannel(index) {
  const count = channel.options.length;
  const next = Math.min(Math.max(index, 0), count - 1);
  if (next === channel.selectedIndex) return false;
  channel.selectedIndex = next;
  channel.dispatchEvent(new Event("change", { bubbles: true }));
  return true;
}

document.getElementById("fm-prev").addEventListener("click", () => goToImage(Number(image.value) - 1));
document.getElementById("fm-next").addEventListener("click", () => goToImage(Number(image.value) + 1));
digit.addEventListener("change", () => goToImage(Number(digit.selectedOptions[0].dataset.image)));

document.getElementById("fm-layer").addEventListener("change", () => {
  channel.selectedIndex = 0; // the other layer may have fewer channels
  navigate();
});
document.getElementById("fm-run").addEventListener("change", () => {
  document.getElementById("fm-layer").value = "1";
  channel.selectedIndex = 0;
  navigate();
});

// Small pictures make themselves the input; a channel's name puts it in focus.
output.addEventListener("click", (event) => {
  const thumb = event.target.closest("button.fm-thumb");
  if (thumb) {
    goToImage(Number(thumb.dataset.image));
    return;
  }
  const name = event.target.closest("button.fm-channel-name");
  if (name) goToChannel(Number(name.dataset.channel));
});

// Inputs (the slider and the selects included) use the arrow keys themselves. A key is the
// page's even at the first or last digit or channel, where it moves nothing.
const used = (move) => () => (move(), true);
bindKeys(
  {
    ArrowLeft: used(() => goToImage(Number(image.value) - 1)),
    ArrowRight: used(() => goToImage(Number(image.value) + 1)),
    ArrowUp: used(() => goToChannel(channel.selectedIndex - 1)),
    ArrowDown: used(() => goToChannel(channel.selectedIndex + 1)),
  },
  { ignore: FIELDS },
);

// The digit select follows the input the server shows.
document.addEventListener("lesson:updated", () => {
  const shown = document.getElementById("fm-input");
  if (shown) digit.value = shown.dataset.label;
});
