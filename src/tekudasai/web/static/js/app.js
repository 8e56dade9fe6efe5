// Page enhancements shared by every page; feature modules load only where their markup is.
const TOAST_MS = 6000;
document.documentElement.classList.add("js");

function initToasts() {
  const region = document.querySelector("[data-toasts]");
  if (!region) return;
  region.addEventListener("click", (event) => {
    const button = event.target.closest("[data-toast-close]");
    if (button) button.closest("[data-toast]").remove();
  });
  for (const toast of region.querySelectorAll("[data-toast]")) {
    if (!toast.classList.contains("toast-error")) setTimeout(() => toast.remove(), TOAST_MS);
  }
}

export function toast(text, kind = "info") {
  const region = document.querySelector("[data-toasts]");
  if (!region) return;
  for (const old of region.querySelectorAll("[data-toast]")) {
    if (old.firstElementChild?.textContent === text) old.remove();
  }
  const item = document.createElement("div");
  item.className = `toast toast-${kind}`;
  item.dataset.toast = "";
  const span = document.createElement("span");
  span.textContent = text;
  const close = document.createElement("button");
  close.type = "button";
  close.className = "toast-close";
  close.dataset.toastClose = "";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  item.append(span, close);
  region.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), TOAST_MS);
}

function initNav() {
  const toggle = document.querySelector("[data-nav-toggle]");
  const nav = document.getElementById("site-nav");
  if (!toggle || !nav) return;
  toggle.addEventListener("click", () => {
    const open = nav.classList.toggle("open");
    toggle.setAttribute("aria-expanded", String(open));
  });
}

function initConfirm() {
  document.addEventListener("submit", (event) => {
    const form = event.target;
    const message = form.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });
}

function initAutoSubmit() {
  for (const control of document.querySelectorAll("[data-autosubmit]")) {
    control.addEventListener("change", () => control.form.requestSubmit());
  }
}

function initPasswordMatch() {
  for (const input of document.querySelectorAll("[data-match]")) {
    const other = document.getElementById(input.dataset.match);
    const check = () =>
      input.setCustomValidity(input.value && input.value !== other.value ? "The passwords do not match." : "");
    input.addEventListener("input", check);
    other.addEventListener("input", check);
  }
}

initToasts();
initNav();
initConfirm();
initAutoSubmit();
initPasswordMatch();

if (document.querySelector("[data-dynamic-form]")) import("./dynamic-form.js");
if (document.querySelector("[data-form-builder]")) import("./builder.js");
if (document.querySelector("[data-queue]")) import("./queue-keys.js");

// Installable app: the worker caches static assets and shows /offline without a network.
if ("serviceWorker" in navigator) {
  navigator.serviceWorker.register("/sw.js").catch(() => {}); // e.g. plain http on a LAN name
}
