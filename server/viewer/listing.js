// @ts-check
/// <reference lib="dom" />
/**
 * The browser side of the listing (`/view/`): a filter box over the rows,
 * live rows (the status, size and update time of every resource, and new
 * uploads at the top, from the Server-Sent Events of `/view/events`), and
 * times shown as how long ago they were. The server serves it inline,
 * allowed by its hash (see `script.ts`); names go in as text.
 *
 * @module
 */

import { formatAgo, formatBytes, formatTime } from "./format.js";
import { showText } from "./render.js";

/** How often the relative times are redrawn. */
const TICK_MS = 15_000;

/**
 * A resource's status, as the feed carries it (the fields shown).
 *
 * @typedef {object} Status
 * @property {string} id
 * @property {string} name
 * @property {string} status
 * @property {string} mimeType
 * @property {number} size
 * @property {string} createdAt
 * @property {string} updatedAt
 */

/**
 * The element with `id`; the page always has it.
 *
 * @template {HTMLElement} T
 * @param {string} id
 * @param {new () => T} type
 * @returns {T}
 */
function $(id, type) {
  const element = document.getElementById(id);
  if (!(element instanceof type)) throw new Error(`the page has no #${id}`);
  return element;
}

const rows = $("rows", HTMLTableSectionElement);
const filter = $("filter", HTMLInputElement);
const maxName = Number(rows.dataset.maxName);
/** @type {Map<string, string>} The status of each row, by id. */
const states = new Map();

/**
 * Shows a time as how long ago it was, the exact time on hover.
 *
 * @param {HTMLTimeElement} el
 */
function showAgo(el) {
  el.textContent = formatAgo(el.dateTime, Date.now());
  el.title = formatTime(el.dateTime);
}

/**
 * A new row for `s`, shaped as the server renders them.
 *
 * @param {Status} s
 * @returns {HTMLTableRowElement}
 */
function newRow(s) {
  const tr = document.createElement("tr");
  tr.dataset.id = s.id;
  tr.dataset.created = s.createdAt;
  const cell = (/** @type {string} */ className) => {
    const td = document.createElement("td");
    td.className = className;
    tr.appendChild(td);
    return td;
  };
  const link = document.createElement("a");
  link.href = "./" + encodeURIComponent(s.id);
  const bdi = document.createElement("bdi");
  const clipped = Array.from(String(s.name)).slice(0, maxName).join("");
  showText(bdi, clipped + (clipped.length < s.name.length ? "\u2026" : ""));
  link.appendChild(bdi);
  cell("name").appendChild(link);
  const badge = document.createElement("span");
  cell("state").appendChild(badge);
  cell("num size");
  showText(cell("type"), s.mimeType);
  for (const which of ["created", "updated"]) {
    const time = document.createElement("time");
    time.className = which;
    cell("time").appendChild(time);
  }
  return tr;
}

/**
 * Puts `tr` among the rows, newest first.
 *
 * @param {HTMLTableRowElement} tr
 * @returns {HTMLTableRowElement} `tr`.
 */
function insertRow(tr) {
  const created = tr.dataset.created ?? "";
  for (const row of rows.rows) {
    if ((row.dataset.created ?? "") < created) {
      rows.insertBefore(tr, row);
      return tr;
    }
  }
  rows.appendChild(tr);
  return tr;
}

/** @param {Status} s A status from the feed. */
function showStatus(s) {
  const found = rows.querySelector(`tr[data-id="${CSS.escape(s.id)}"]`);
  const tr = found instanceof HTMLTableRowElement
    ? found
    : insertRow(newRow(s));
  const badge = tr.querySelector(".badge, td.state > span");
  if (badge instanceof HTMLElement) {
    badge.className = "badge " + s.status;
    badge.textContent = s.status;
  }
  const size = tr.querySelector("td.size");
  if (size instanceof HTMLElement) {
    size.textContent = formatBytes(s.size);
    size.title = s.size.toLocaleString("en-US") + " bytes";
  }
  const times = tr.querySelectorAll("time");
  [s.createdAt, s.updatedAt].forEach((iso, i) => {
    const time = times[i];
    if (!(time instanceof HTMLTimeElement)) return;
    time.dateTime = iso;
    showAgo(time);
  });
  states.set(s.id, s.status);
  applyFilter(tr);
  showCounts();
}

/**
 * Hides the rows (or `only` that one) the filter does not match: by name,
 * status or type, case-insensitive.
 *
 * @param {HTMLTableRowElement} [only]
 */
function applyFilter(only) {
  const words = filter.value.toLowerCase().split(/\s+/).filter(Boolean);
  for (const tr of only ? [only] : rows.rows) {
    const text = [".name", ".state", ".type"]
      .map((cell) => tr.querySelector(cell)?.textContent ?? "").join(" ")
      .toLowerCase();
    tr.hidden = !words.every((word) => text.includes(word));
  }
  showCounts();
}

/** The counts above the table: resources, live ones, shown ones. */
function showCounts() {
  const all = [...rows.rows];
  const live = all.filter((tr) => {
    const state = states.get(tr.dataset.id ?? "") ??
      tr.querySelector(".badge")?.textContent;
    return state !== "COMPLETED" && state !== "FAILED";
  }).length;
  const shown = all.filter((tr) => !tr.hidden).length;
  $("total", HTMLElement).textContent = all.length.toLocaleString("en-US");
  $("live", HTMLElement).textContent = live.toLocaleString("en-US");
  $("shown", HTMLElement).textContent = shown === all.length
    ? ""
    : shown.toLocaleString("en-US") + " shown";
  $("empty", HTMLElement).hidden = all.length > 0;
  $("table", HTMLElement).hidden = all.length === 0;
}

filter.addEventListener("input", () => applyFilter());
document.addEventListener("keydown", (event) => {
  if (event.key !== "/" || event.target === filter) return;
  event.preventDefault();
  filter.focus();
});
for (const time of document.querySelectorAll("time")) {
  if (time instanceof HTMLTimeElement) showAgo(time);
}
setInterval(() => {
  for (const time of document.querySelectorAll("time")) {
    if (time instanceof HTMLTimeElement) showAgo(time);
  }
}, TICK_MS);

const feed = new EventSource("./events");
feed.addEventListener("status", (event) => showStatus(JSON.parse(event.data)));
feed.addEventListener("removed", (event) => {
  const { id } = JSON.parse(event.data);
  rows.querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.remove();
  states.delete(id);
  showCounts();
});
applyFilter();
