// The learner's page (/me): save a display name (POST /api/me) and make a one-time link that
// carries this identity to another browser (POST /api/me/link), with a button that copies it.
// Names are learners' text: they are only ever set as textContent.

import { showError } from "./dom.js";

const form = document.getElementById("name-form");
const nameInput = document.getElementById("name");
const nameShown = document.getElementById("me-name");
const nameError = document.getElementById("name-error");
const nameSaved = document.getElementById("name-saved");
const saveButton = document.getElementById("save-name");
const makeLink = document.getElementById("make-link");
const linkError = document.getElementById("link-error");
const linkBox = document.getElementById("link-box");
const linkUrl = document.getElementById("link-url");
const linkExpiry = document.getElementById("link-expiry");
const copyButton = document.getElementById("copy-link");
const copyStatus = document.getElementById("copy-status");

// The server's message for a refusal (422 names the limit), or a sentence when there is none.
async function refusal(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
  } catch {
    // not JSON: fall through
  }
  return `The server answered ${response.status}; try again.`;
}

async function post(url, body) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  showError(nameError, "");
  nameSaved.textContent = "";
  nameInput.removeAttribute("aria-invalid");
  saveButton.disabled = true;
  try {
    const response = await post("/api/me", { name: nameInput.value });
    if (!response.ok) {
      nameInput.setAttribute("aria-invalid", "true");
      showError(nameError, await refusal(response));
      nameInput.focus();
      return;
    }
    const me = await response.json();
    nameShown.textContent = me.name;
    nameInput.value = me.name;
    nameSaved.textContent = "Saved.";
  } catch {
    showError(nameError, "The server could not be reached; try again.");
  } finally {
    saveButton.disabled = false;
  }
});

makeLink.addEventListener("click", async () => {
  showError(linkError, "");
  makeLink.disabled = true;
  try {
    const response = await post("/api/me/link");
    if (!response.ok) {
      showError(linkError, await refusal(response));
      return;
    }
    const link = await response.json();
    linkUrl.value = new URL(link.url, location.origin).href;
    const expires = new Date(link.expires_at);
    linkExpiry.textContent = `It works once, until ${expires.toLocaleTimeString()}.`;
    copyStatus.textContent = "";
    linkBox.hidden = false;
    linkUrl.focus();
    linkUrl.select();
  } catch {
    showError(linkError, "The server could not be reached; try again.");
  } finally {
    makeLink.disabled = false;
  }
});

copyButton.addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText(linkUrl.value);
    copyStatus.textContent = "Copied.";
  } catch {
    // No clipboard (plain http on another host): leave the link selected to copy by hand.
    linkUrl.focus();
    linkUrl.select();
    copyStatus.textContent = "Selected: copy it with your keyboard.";
  }
});
