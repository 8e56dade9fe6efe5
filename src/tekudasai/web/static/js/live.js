// Live updates from GET /api/events (server-sent events): new comments appear in the
// conversation and are announced to screen readers, status and assignee changes refresh the
// page's parts in place, agents see who else is on a ticket, the queue refreshes its rows,
// and /admin/system refreshes its figures. EventSource reconnects by itself and resumes
// with Last-Event-ID, so nothing is missed across a short disconnect.

const PRESENCE_EVERY_MS = 25_000; // the server forgets a presence 45 s after the last one
const QUEUE_DEBOUNCE_MS = 1_000;
const SYSTEM_EVERY_MS = 60_000;
const STATUS_LABELS = {
  open: "Open",
  in_progress: "In progress",
  pending: "Pending",
  resolved: "Resolved",
  closed: "Closed",
};

const ticketHooks = document.querySelector("[data-live-ticket]");
const queue = document.querySelector("[data-live-queue]");

function announce(text) {
  const region = document.querySelector("[data-live-announce]");
  if (!region) return;
  // Cleared first so the same words twice are still announced.
  region.textContent = "";
  setTimeout(() => {
    region.textContent = text;
  }, 50);
}

function debounce(fn, ms) {
  let timer = null;
  return () => {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

async function fetchPage() {
  const response = await fetch(location.href, { credentials: "same-origin" });
  if (!response.ok) return null;
  return new DOMParser().parseFromString(await response.text(), "text/html");
}

// Swap each element matching `selector` with the freshly rendered one, unless the user is
// working in it (focus inside), so nobody loses what they were typing or choosing.
// Returns the elements it left alone that way, so the caller can try again later.
function swap(fresh, selector) {
  const olds = document.querySelectorAll(selector);
  const news = fresh.querySelectorAll(selector);
  const kept = [];
  olds.forEach((old, i) => {
    const next = news[i];
    if (!next || old.innerHTML === next.innerHTML) return;
    if (old.contains(document.activeElement) && document.activeElement !== document.body) {
      kept.push(old);
      return;
    }
    old.replaceWith(document.importNode(next, true));
  });
  return kept;
}

function connect(handlers) {
  const source = new EventSource("/api/events");
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => {
      try {
        handler(JSON.parse(event.data));
      } catch (error) {
        console.warn("live update ignored", error);
      }
    });
  }
  document.documentElement.dataset.live = "connecting";
  source.addEventListener("open", () => {
    document.documentElement.dataset.live = "open";
  });
  source.addEventListener("error", () => {
    // CLOSED: signed out (401) or the server refused; EventSource does not retry then.
    document.documentElement.dataset.live =
      source.readyState === EventSource.CLOSED ? "closed" : "connecting";
  });
  return source;
}

// -- a ticket page (agent or customer) -----------------------------------------------------

function commentItem(c, staffView) {
  const item = document.createElement("li");
  item.className = "comment";
  if (c.internal) item.classList.add("comment-internal");
  else if (c.authorRole === "agent" || c.authorRole === "admin") item.classList.add("comment-staff");
  item.id = `comment-${c.id}`;
  item.dataset.comment = "";
  const head = document.createElement("div");
  head.className = "comment-head";
  const name = document.createElement("strong");
  name.textContent = c.authorName;
  head.append(name);
  if (c.authorRole === "agent" || c.authorRole === "admin") {
    head.append(" ", badge("badge badge-role", "Support"));
  }
  if (c.internal && staffView) {
    head.append(" ", badge("badge badge-internal", "Internal note · not visible to the customer"));
  }
  const spacer = document.createElement("span");
  spacer.className = "spacer";
  const time = document.createElement("time");
  time.className = "muted";
  time.dateTime = c.createdAt;
  time.textContent = new Date(c.createdAt).toLocaleString();
  head.append(spacer, time);
  const body = document.createElement("div");
  body.className = "comment-body plain-text";
  body.textContent = c.body;
  item.append(head, body);
  return item;
}

function badge(className, text) {
  const span = document.createElement("span");
  span.className = className;
  span.textContent = text;
  return span;
}

function excerpt(text, length = 140) {
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > length ? `${flat.slice(0, length)}…` : flat;
}

function initTicket(hooks) {
  const ticketId = Number(hooks.dataset.liveTicket);
  const me = hooks.dataset.liveMe;
  const staffView = hooks.dataset.liveStaff === "true";
  const timeline = hooks.parentElement.querySelector("ol.timeline");

  const refresh = debounce(async () => {
    const fresh = await fetchPage();
    if (!fresh) return;
    swap(fresh, ".page-header");
    swap(fresh, "ol.log");
    swap(fresh, "dl.meta");
    swap(fresh, "#f-status");
    swap(fresh, "#f-assignee");
  }, 300);

  const presence = staffView ? initPresence(hooks, ticketId, me) : null;

  connect({
    "comment.created": (c) => {
      if (c.ticketId !== ticketId || !timeline || document.getElementById(`comment-${c.id}`)) return;
      timeline.querySelector(":scope > li.muted")?.remove(); // "No messages yet."
      timeline.append(commentItem(c, staffView));
      const what = c.internal ? "New internal note" : "New reply";
      announce(`${what} from ${c.authorName}: ${excerpt(c.body)}`);
      refresh(); // the history and the status (a customer's reply can reopen the ticket)
    },
    "ticket.updated": (t) => {
      if (t.ticketId !== ticketId) return;
      if (t.status) announce(`Status changed to ${STATUS_LABELS[t.status] ?? t.status}.`);
      if ("assigneeId" in t) {
        announce(t.assigneeName ? `Assigned to ${t.assigneeName}.` : "Unassigned.");
      }
      refresh();
    },
    presence: (p) => {
      if (presence && p.ticketId === ticketId && p.userId !== me) presence.seen(p);
    },
  });
}

// "Aiko is viewing / replying": others' presence from the stream; ours sent every 25 s and
// whenever we start or stop writing.
function initPresence(hooks, ticketId, me) {
  const area = hooks.querySelector("[data-presence]");
  const form = document.querySelector("[data-live-reply]");
  const textarea = form?.querySelector("textarea");
  const others = new Map();
  let shown = "";
  let sentState = null;
  let lastSent = 0;

  function render() {
    const now = Date.now();
    for (const [id, p] of others) if (p.expires <= now) others.delete(id);
    const parts = [...others.values()]
      .sort((a, b) => a.name.localeCompare(b.name))
      .map((p) => `${p.name} is ${p.state === "replying" ? "replying" : "viewing"}`);
    const text = parts.length ? `${parts.join(", ")}.` : "";
    if (text !== shown) {
      shown = text;
      area.textContent = text;
      area.classList.toggle("badge", Boolean(text));
    }
  }

  function seen(p) {
    others.set(p.userId, { name: p.name, state: p.state, expires: Date.parse(p.expiresAt) });
    render();
  }

  function state() {
    return textarea && textarea.value.trim() && document.activeElement === textarea
      ? "replying"
      : "viewing";
  }

  async function send(force = false) {
    if (document.visibilityState === "hidden") return;
    const now = state();
    if (!force && now === sentState && Date.now() - lastSent < PRESENCE_EVERY_MS) return;
    sentState = now;
    lastSent = Date.now();
    try {
      const response = await fetch(`/api/tickets/${ticketId}/presence`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ state: now }),
      });
      if (!response.ok) return;
      const { data } = await response.json();
      for (const p of data.others) if (p.userId !== me) seen(p);
    } catch {
      // offline for a moment: the next beat tries again
    }
  }

  setInterval(() => send(), 5_000);
  setInterval(render, 5_000);
  textarea?.addEventListener("input", debounce(() => send(), 500));
  textarea?.addEventListener("blur", () => send());
  document.addEventListener("visibilitychange", () => send(true));
  send(true);
  return { seen };
}

// -- the agent queue -----------------------------------------------------------------------

function initQueue(region) {
  const refresh = debounce(async () => {
    const fresh = await fetchPage();
    if (!fresh) return;
    // Focus in the list (keyboard users): refresh once focus leaves it.
    for (const kept of swap(fresh, "[data-live-queue]")) {
      kept.addEventListener("focusout", refresh, { once: true });
    }
  }, QUEUE_DEBOUNCE_MS);
  connect({
    "ticket.created": (t) => {
      announce(`New ticket #${t.ticketId}: ${excerpt(t.summary ?? "", 80)}`);
      refresh();
    },
    "ticket.updated": refresh,
    "comment.created": refresh,
  });
  return region;
}

// -- /admin/system -------------------------------------------------------------------------

function initSystem() {
  setInterval(async () => {
    if (document.visibilityState === "hidden") return;
    const fresh = await fetchPage();
    if (fresh) swap(fresh, "section.card[id]");
  }, SYSTEM_EVERY_MS);
}

if (ticketHooks) initTicket(ticketHooks);
else if (queue) initQueue(queue);
else if (location.pathname === "/admin/system") initSystem();
