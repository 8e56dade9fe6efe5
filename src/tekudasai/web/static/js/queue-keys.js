// Keyboard shortcuts of the agent queue (/agent), listed in its "Keyboard shortcuts" section.
// Single-key shortcuts can be switched off there (WCAG 2.1.4); they never fire while typing.
const STORE_KEY = "tk.queue-shortcuts";
const help = document.querySelector("[data-shortcuts]");
const toggle = document.querySelector("[data-shortcuts-toggle]");

function stored() {
  try {
    return localStorage.getItem(STORE_KEY) !== "off";
  } catch {
    return true; // storage blocked: keep the default
  }
}
let shortcutsOn = stored();

function rows() {
  // Looked up on every key: rows added later (live updates) take part too.
  return [...document.querySelectorAll("[data-queue] tbody tr[data-ticket]")];
}

function currentIndex(list) {
  const focused = document.activeElement?.closest?.("tr[data-ticket]");
  const marked = document.querySelector("[data-queue] tr.is-current");
  return list.indexOf(focused ?? marked);
}

function select(list, index) {
  const row = list[Math.max(0, Math.min(index, list.length - 1))];
  if (!row) return;
  for (const other of list) other.classList.toggle("is-current", other === row);
  const link = row.querySelector("a.row-link");
  link?.focus();
  row.scrollIntoView({ block: "nearest" });
}

function typing(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || target.closest("input, textarea, select") !== null)
  );
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  const search = document.getElementById("search");
  if (event.key === "Escape" && event.target === search) {
    search.blur();
    const list = rows();
    select(list, Math.max(currentIndex(list), 0));
    return;
  }
  if (!shortcutsOn || typing(event.target)) return;
  const list = rows();
  switch (event.key) {
    case "j":
      select(list, currentIndex(list) + 1);
      break;
    case "k":
      select(list, currentIndex(list) < 0 ? 0 : currentIndex(list) - 1);
      break;
    case "o": {
      const link = list[currentIndex(list)]?.querySelector("a.row-link");
      if (link) window.location.assign(link.href);
      break;
    }
    case "/":
      if (!search) return;
      search.focus();
      search.select();
      break;
    case "?":
      if (!help) return;
      help.scrollIntoView({ block: "start" });
      help.focus();
      break;
    default:
      return;
  }
  event.preventDefault();
});

if (help) {
  help.hidden = false; // the shortcuts need this script: without it the section stays hidden
  if (toggle) {
    toggle.checked = shortcutsOn;
    toggle.addEventListener("change", () => {
      shortcutsOn = toggle.checked;
      try {
        localStorage.setItem(STORE_KEY, toggle.checked ? "on" : "off");
      } catch {
        // storage blocked: the choice lasts for this page only
      }
    });
  }
}
