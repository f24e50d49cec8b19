// What every page that steps through a learner's program shares (the Tensors lesson and the
// playground): the trace rebuilt from its changes (API.md "Programs", steps "changes"), the
// files and figures an answer hands back as base64, and taking the program home (.py, notebook).
// Learner text only ever reaches the page through textContent.

import { el } from "./dom.js";

/**
 * `code` as the playground's `?code=`: raw DEFLATE (CompressionStream "deflate-raw"), then
 * base64url without padding, as app/web/code_url.py reads it.
 */
export async function packProgram(code) {
  const stream = new Blob([new TextEncoder().encode(code)]).stream().pipeThrough(new CompressionStream("deflate-raw"));
  const bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const CHECKPOINT = 32; // steps between saved states: rebuilding a step costs at most this many

// One step's changes applied to the variables before it: removed, then changes (a new name goes
// last, so the order is the program's own).
export function applyStep(variables, step) {
  for (const name of step.removed || []) variables.delete(name);
  for (const [name, value] of Object.entries(step.changes || {})) variables.set(name, value);
}

/** A recorded trace, with the variables of any step rebuilt from a saved state nearby. */
export class Trace {
  constructor(steps) {
    this.steps = steps;
    this.checkpoints = [new Map()]; // checkpoints[j]: the variables before step j * CHECKPOINT
    const variables = new Map();
    steps.forEach((step, i) => {
      applyStep(variables, step);
      if ((i + 1) % CHECKPOINT === 0) this.checkpoints.push(new Map(variables));
    });
  }

  /** The variables after step `index` (0-based; -1: before the first step), as a new Map. */
  variablesAt(index) {
    const j = Math.min(Math.floor((index + 1) / CHECKPOINT), this.checkpoints.length - 1);
    const variables = new Map(this.checkpoints[j]);
    for (let i = j * CHECKPOINT; i <= index; i++) applyStep(variables, this.steps[i]);
    return variables;
  }
}

/** Blob URLs made from an answer's base64 parts, all released together when it is replaced. */
export class BlobUrls {
  constructor() {
    this.urls = [];
  }

  make(base64, type) {
    const text = atob(base64);
    const bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    const url = URL.createObjectURL(new Blob([bytes], { type }));
    this.urls.push(url);
    return url;
  }

  releaseAll() {
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
  }
}

// A file's size for people; the number and its unit never part at a line break.
export function sizeText(bytes) {
  if (bytes < 1024) return `${bytes}\u00a0byte${bytes === 1 ? "" : "s"}`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)}\u00a0KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)}\u00a0MB`;
}

/** One file the program saved, as a download (a TensorBoard log as its zip). */
export function fileItem(file, blobs) {
  const li = el("li");
  li.dataset.kind = file.kind;
  const board = file.kind === "tensorboard";
  const link = el("a", "button download", board ? "Download TensorBoard log (zip)" : `Download ${file.name}`);
  link.href = blobs.make(file.base64, board ? "application/zip" : "application/octet-stream");
  link.download = file.name.split("/").pop() || file.name;
  li.append(link, " ", el("span", "muted", `${file.name} · ${sizeText(file.bytes)}`));
  if (board) {
    const hint = el("p", "muted outputs-hint", "Unzip it, then run ");
    hint.append(el("code", "", "tensorboard --logdir <unzipped folder>"));
    li.append(hint);
  }
  return li;
}

const SAVED_URL_LIFETIME_MS = 10_000; // long enough for the browser to start saving the Blob

/** Save `blob` under `name`, as a click on a download link would. */
export function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = el("a");
  link.href = url;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), SAVED_URL_LIFETIME_MS);
}

// The file name a Content-Disposition header gives (RFC 6266: filename* wins over filename),
// without any folder; `fallback` when it gives none.
export function attachmentName(header, fallback) {
  const text = header || "";
  let name = "";
  const extended = /filename\*\s*=\s*UTF-8''([^;\s]+)/i.exec(text);
  if (extended) {
    try {
      name = decodeURIComponent(extended[1]);
    } catch {
      name = ""; // a malformed escape: the plain filename below is the one to use
    }
  }
  if (!name) {
    const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))/i.exec(text);
    if (plain) name = plain[1] !== undefined ? plain[1].replace(/\\(.)/g, "$1") : plain[2].trim();
  }
  return name.split(/[\\/]/).pop() || fallback;
}

// A refusal's words: FastAPI's own 422 (a malformed body) carries a list, the app's a string.
export const detailText = (body, fallback) => (typeof body.detail === "string" && body.detail ? body.detail : fallback);

/**
 * Ask POST /api/notebook for `code` as a notebook and save it. Returns null when saved, or the
 * message to show (the sandbox's refusal, or why the server could not make it).
 */
export async function downloadNotebook(code, title) {
  try {
    const response = await fetch("/api/notebook", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/x-ipynb+json, application/json" },
      body: JSON.stringify({ code, title }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      return response.status === 422
        ? detailText(body, "The sandbox refused this program.")
        : `Could not make the notebook: ${detailText(body, `the server answered ${response.status}.`)}`;
    }
    save(await response.blob(), attachmentName(response.headers.get("Content-Disposition"), "program.ipynb"));
    return null;
  } catch (error) {
    return `Could not make the notebook: ${error.message}`;
  }
}

/** Indent with four spaces on Tab and run on Ctrl+Enter, in a program's textarea. */
export function editorKeys(editor, { run, edited }) {
  let escaped = false; // Escape, then Tab, leaves the editor as usual (no keyboard trap)
  editor.addEventListener("keydown", (event) => {
    const leaving = escaped;
    escaped = event.key === "Escape";
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    } else if (event.key === "Tab" && !event.shiftKey && !event.altKey && !leaving) {
      // Indent with four spaces.
      event.preventDefault();
      editor.setRangeText("    ", editor.selectionStart, editor.selectionEnd, "end");
      edited();
    }
  });
}
