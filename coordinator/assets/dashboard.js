// The tatzelwurm dashboard: reads the JSON API and follows /api/events (server-sent events).
// Read-only. Everything a task or worker carries is put on the page as text (textContent),
// never as markup, so no task's arguments, output or traceback can run as script here.
"use strict";

const STATES = ["created", "blocked", "scheduled", "paused", "ready", "running", "waiting",
                "completed", "failed", "killed"];
const ACTIVITY_ROWS = 50;      // tasks kept in "Recent activity"
const TAIL_EVENTS = 500;       // events before now the page starts with
const FAILURES_SHOWN = 20;     // tasks kept in "Recent failures"
const CHART_SECONDS = 300;     // the throughput chart's window
const WORKERS_EVERY_MS = 2000; // workers' load and memory change without events: poll them
const QUEUES_EVERY_MS = 5000;  // and queue counts as a floor under the event-driven refresh

const $ = (id) => document.getElementById(id);
const view = {
  token: sessionStorage.getItem("tatzelwurm-token") || "",
  lastSeq: null,       // the last event seen, to reconnect after it
  source: null,        // the EventSource
  failures: [],        // [{id, queue, at, error:{type,message,traceback}|null}], newest first
  perSecond: new Map(),// second -> {completed, failed}
  detail: null,        // the id shown in the detail panel
  queuesDue: null,     // a pending refresh of queues and workers
};

// --- talking to the coordinator --------------------------------------------------------

class Unauthorized extends Error {}

async function api(path) {
  const headers = view.token ? { Authorization: "Bearer " + view.token } : {};
  const response = await fetch(path, { headers });
  const body = await response.json().catch(() => null);
  if (response.status === 401) {
    askToken(body && body.message);
    throw new Unauthorized(body ? body.message : "unauthorized");
  }
  if (!response.ok) {
    throw new Error(body && body.message ? body.message : path + ": HTTP " + response.status);
  }
  return body;
}

function askToken(message) {
  const dialog = $("token-dialog");
  $("token-message").textContent = message || "This coordinator requires a token.";
  if (!dialog.open) dialog.showModal();
}

function showProblem(err) {
  if (err instanceof Unauthorized) return;
  const problem = $("problem");
  problem.textContent = String(err.message || err);
  problem.hidden = false;
}

function clearProblem() { $("problem").hidden = true; }

// --- small DOM helpers ---------------------------------------------------------------------

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function num(value) { return el("td", value, "num"); }

function taskLink(id) {
  const a = el("a", "#" + id);
  a.href = "#task-" + id;
  a.dataset.task = id;
  a.addEventListener("click", (e) => { e.preventDefault(); showTask(id); });
  return a;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + units[i];
}

// A span of seconds, as "3h 12m".
function duration(seconds) {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return d + "d " + h + "h";
  if (h) return h + "h " + m + "m";
  if (m) return m + "m " + s + "s";
  return s + "s";
}

function clock(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleTimeString() : "–";
}

function stateCell(state) {
  const td = el("td", state, "state state-" + state.replace(" ", "-"));
  return td;
}

// --- workers ---------------------------------------------------------------------------------

async function refreshWorkers() {
  const { workers } = await api("/api/workers");
  const body = $("workers").tBodies[0];
  body.replaceChildren();
  let slots = 0, busy = 0;
  for (const w of workers) {
    const running = Math.min(w.slots, Math.max(0, w.running - w.queued));
    slots += w.slots; busy += running;
    const load = el("td");
    const track = el("span", null, "bar track");
    const fill = el("span", null, "bar");
    fill.style.width = (w.slots ? 100 * running / w.slots : 0) + "%";
    track.appendChild(fill);
    load.append(track, running + "/" + w.slots + (w.queued ? " +" + w.queued + " queued" : ""));
    const usage = w.usage;
    const memory = usage ? bytes(usage.rss) + (usage.max_memory ? " of " + bytes(usage.max_memory) + "/slot" : "") : "–";
    const cpu = usage ? usage.cpu.toFixed(2) + " cores" : "–";
    const tr = row([el("td", w.name), stateCell(w.state), load, num(w.done), el("td", memory),
                    el("td", cpu), el("td", w.queues.join(", ")), el("td", duration(w.uptime))]);
    tr.dataset.worker = w.name;
    body.appendChild(tr);
  }
  $("workers-empty").hidden = workers.length > 0;
  $("workers-summary").textContent = workers.length
    ? workers.length + " connected, " + busy + " of " + slots + " slots busy" : "";
}

// --- queues ----------------------------------------------------------------------------------

async function refreshQueues() {
  const { queues } = await api("/api/queues");
  const head = $("queues-head");
  head.replaceChildren(el("th", "Queue"));
  for (const s of STATES) head.appendChild(el("th", s, "num"));
  const body = $("queues").tBodies[0];
  body.replaceChildren();
  const totals = Object.fromEntries(STATES.map((s) => [s, 0]));
  for (const q of queues) {
    const name = el("td", q.name + (q.paused ? " (paused)" : ""));
    const tr = row([name, ...STATES.map((s) => {
      totals[s] += q.counts[s] || 0;
      const td = num(q.counts[s] || 0);
      td.dataset.state = s;
      return td;
    })]);
    tr.dataset.queue = q.name;
    body.appendChild(tr);
  }
  const foot = $("queues").tFoot;
  foot.replaceChildren();
  if (queues.length > 1) foot.appendChild(row([el("td", "all"), ...STATES.map((s) => num(totals[s]))]));
  $("queues-empty").hidden = queues.length > 0;
}

// Queue counts and worker loads follow the events, at most once a second.
function queuesSoon() {
  if (view.queuesDue === null) {
    view.queuesDue = setTimeout(() => {
      view.queuesDue = null;
      Promise.all([refreshQueues(), refreshWorkers()]).catch(showProblem);
    }, 1000);
  }
}

// --- activity, failures, throughput ----------------------------------------------------------

function onTaskEvent(e) {
  const body = $("activity").tBodies[0];
  let tr = body.querySelector('tr[data-task="' + e.task + '"]');
  if (tr) tr.remove();
  tr = row([el("td"), el("td", e.queue), stateCell(e.state), num(e.attempt),
            el("td", e.worker || "–"), el("td", clock(e.at))]);
  tr.cells[0].appendChild(taskLink(e.task));
  tr.dataset.task = e.task;
  tr.dataset.state = e.state;
  body.insertBefore(tr, body.firstChild);
  while (body.rows.length > ACTIVITY_ROWS) body.deleteRow(body.rows.length - 1);
  $("activity-empty").hidden = true;

  if (e.state === "completed" || e.state === "failed") {
    const second = Math.floor(e.at);
    const bucket = view.perSecond.get(second) || { completed: 0, failed: 0 };
    bucket[e.state]++;
    view.perSecond.set(second, bucket);
  }
  if (e.state === "failed") {
    addFailure({ id: e.task, queue: e.queue, at: e.at, error: null });
  }
  if (view.detail === e.task) showTask(e.task);
  queuesSoon();
}

// Keeps the newest failures; those shown without their error (an event names only the
// error's type) fetch it with the task, once.
function addFailure(failure) {
  view.failures = [failure, ...view.failures.filter((f) => f.id !== failure.id)]
    .sort((a, b) => b.at - a.at)
    .slice(0, FAILURES_SHOWN);
  for (const f of view.failures) {
    if (f.error || f.fetching) continue;
    f.fetching = true;
    // A task purged since is shown without its error rather than asked for again.
    api("/api/tasks/" + f.id).then((t) => { f.error = t.error; renderFailures(); })
      .catch(() => {});
  }
  renderFailures();
}

function renderFailures() {
  const list = $("failures");
  list.replaceChildren();
  for (const f of view.failures) {
    const li = el("li");
    li.dataset.task = f.id;
    li.append(taskLink(f.id), " ", el("span", f.queue, "muted"), " ", el("span", clock(f.at), "muted"), " ");
    if (f.error) {
      li.append(el("strong", f.error.type), ": ", el("span", f.error.message));
      if (f.error.traceback) li.appendChild(el("pre", f.error.traceback));
    }
    list.appendChild(li);
  }
  $("failures-empty").hidden = view.failures.length > 0;
}

// Failed tasks at load: the API lists in id order, so read the failed ones page by page (at
// most 20 pages) and keep the newest.
async function loadFailures() {
  let after = null, newest = [];
  for (let page = 0; page < 20; page++) {
    const query = "/api/tasks?state=failed&limit=500" + (after === null ? "" : "&after=" + after);
    const { tasks, next_after } = await api(query);
    newest = newest.concat(tasks).slice(-FAILURES_SHOWN);
    if (next_after === null) break;
    after = next_after;
  }
  for (const t of newest) {
    addFailure({ id: t.id, queue: t.queue, at: t.finished_at, error: t.error });
  }
}

function drawChart() {
  const svg = $("throughput");
  const ns = "http://www.w3.org/2000/svg";
  const width = 640, height = 160, top = 12, bottom = 18, left = 34;
  const now = Math.floor(Date.now() / 1000);
  for (const second of view.perSecond.keys()) {
    if (second < now - CHART_SECONDS) view.perSecond.delete(second);
  }
  const series = { completed: [], failed: [] };
  let max = 1;
  for (let i = CHART_SECONDS - 1; i >= 0; i--) {
    const b = view.perSecond.get(now - i) || { completed: 0, failed: 0 };
    series.completed.push(b.completed);
    series.failed.push(b.failed);
    max = Math.max(max, b.completed, b.failed);
  }
  const x = (i) => left + (i * (width - left)) / (CHART_SECONDS - 1);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const nodes = [];
  const line = (x1, y1, x2, y2, cls) => {
    const l = document.createElementNS(ns, "line");
    l.setAttribute("x1", x1); l.setAttribute("y1", y1); l.setAttribute("x2", x2); l.setAttribute("y2", y2);
    l.setAttribute("class", cls);
    return l;
  };
  const text = (tx, ty, value, anchor) => {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", tx); t.setAttribute("y", ty);
    if (anchor) t.setAttribute("text-anchor", anchor);
    t.textContent = value;
    return t;
  };
  nodes.push(line(left, y(max), width, y(max), "grid"), line(left, y(0), width, y(0), "grid"));
  nodes.push(text(left - 4, y(max) + 4, max, "end"), text(left - 4, y(0) + 4, "0", "end"));
  nodes.push(text(left, height - 2, "-5 min"), text(width, height - 2, "now", "end"));
  for (const name of ["completed", "failed"]) {
    const p = document.createElementNS(ns, "polyline");
    p.setAttribute("class", name);
    p.setAttribute("points", series[name].map((v, i) => x(i).toFixed(1) + "," + y(v).toFixed(1)).join(" "));
    nodes.push(p);
  }
  svg.replaceChildren(...nodes);
  const last10 = series.completed.slice(-10).reduce((a, b) => a + b, 0);
  $("throughput-now").textContent = (last10 / 10).toFixed(1) + " completed/s over the last 10 s";
}

// --- one task ------------------------------------------------------------------------------

async function showTask(id) {
  id = Number(id);
  view.detail = id;
  let t;
  try {
    t = await api("/api/tasks/" + id);
  } catch (err) {
    if (err instanceof Unauthorized) return;
    $("detail-section").hidden = false;
    $("detail-id").textContent = "#" + id;
    $("detail").replaceChildren(el("dt", "error"), el("dd", err.message));
    for (const part of ["detail-stdout", "detail-stderr"]) $(part).textContent = "";
    $("detail-error").hidden = $("detail-error-title").hidden = true;
    return;
  }
  if (view.detail !== id) return;
  $("detail-section").hidden = false;
  $("detail-id").textContent = "#" + t.id;
  const fields = [
    ["state", t.state], ["function", t.function], ["args", JSON.stringify(t.args)],
    ["kwargs", JSON.stringify(t.kwargs)], ["queue", t.queue], ["priority", t.priority],
    ["after", t.after.length ? t.after.map((a) => "#" + a).join(", ") : "–"],
    ["result", t.result === null ? "–" : JSON.stringify(t.result)],
    ["worker", t.worker || "–"], ["attempts", t.attempts + " (" + t.failures + " failed, " + t.crashes + " lost)"],
    ["created", clock(t.created_at)], ["started", clock(t.started_at)], ["finished", clock(t.finished_at)],
  ];
  const dl = $("detail");
  dl.replaceChildren();
  for (const [name, value] of fields) {
    const dd = el("dd", value);
    if (name === "state") { dd.className = "state-" + value; dd.id = "detail-state"; }
    dl.append(el("dt", name), dd);
  }
  const hasError = !!t.error;
  $("detail-error-title").hidden = $("detail-error").hidden = !hasError;
  $("detail-error").textContent = hasError
    ? t.error.type + ": " + t.error.message + (t.error.traceback ? "\n\n" + t.error.traceback : "") : "";
  $("detail-stdout").textContent = t.stdout || "";
  $("detail-stderr").textContent = t.stderr || "";
}

// --- the live feed -------------------------------------------------------------------------

function setLive(state, text) {
  const badge = $("live");
  badge.dataset.state = state;
  badge.textContent = text || state;
}

function connect() {
  if (view.source) view.source.close();
  const params = new URLSearchParams();
  // The first time, the last events before now too (recent activity, failures, the chart);
  // after that, exactly after the last event seen.
  if (view.lastSeq !== null) params.set("since", view.lastSeq);
  else params.set("tail", TAIL_EVENTS);
  if (view.token) params.set("token", view.token);
  const source = new EventSource("/api/events?" + params.toString());
  view.source = source;
  // A stream from now opens with `position`: from then on, nothing that happens is missed.
  source.addEventListener("position", (message) => {
    const position = JSON.parse(message.data);
    if (view.lastSeq === null) view.lastSeq = position.after;
    setLive("live");
    clearProblem();
  });
  source.onopen = () => {
    if (view.lastSeq !== null) { setLive("live"); clearProblem(); }
  };
  source.onmessage = (message) => {
    const e = JSON.parse(message.data);
    view.lastSeq = e.seq;
    $("last-seq").textContent = "event " + e.seq;
    if (e.kind === "task") onTaskEvent(e);
    else if (e.kind === "worker") refreshWorkers().catch(showProblem);
    else if (e.kind === "purged") queuesSoon();
  };
  source.addEventListener("failure", (message) => {
    const failure = JSON.parse(message.data);
    source.close();
    // Too slow to keep up (a burst of tasks), or asked for events no longer kept: start again
    // from now; the counts come from the API, so only some activity rows are skipped.
    view.lastSeq = null;
    setLive("reconnecting", "reconnecting: " + failure.message);
    refreshAll();
    setTimeout(connect, 1000);
  });
  source.onerror = () => {
    // The browser reconnects on its own (with Last-Event-ID) unless the server refused.
    if (source.readyState === EventSource.CLOSED) {
      setLive("reconnecting");
      setTimeout(() => probe().then(connect).catch(() => setTimeout(connect, 3000)), 2000);
    } else {
      setLive("reconnecting");
    }
  };
}

// A cheap authorised request: tells whether the token is needed before the feed is opened.
function probe() { return api("/api/queues"); }

function refreshAll() {
  return Promise.all([refreshWorkers(), refreshQueues()]).catch(showProblem);
}

async function start() {
  try {
    await probe();
  } catch (err) {
    showProblem(err);
    return; // the token dialog restarts us
  }
  clearProblem();
  connect();
  await refreshAll();
  loadFailures().catch(showProblem);
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", () => {
    view.token = $("token").value.trim();
    sessionStorage.setItem("tatzelwurm-token", view.token);
    start();
  });
  $("show-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = $("show-id").value.trim();
    if (/^[0-9]+$/.test(id)) showTask(id);
  });
  $("detail-close").addEventListener("click", () => {
    view.detail = null;
    $("detail-section").hidden = true;
  });
  setInterval(() => refreshWorkers().catch(showProblem), WORKERS_EVERY_MS);
  setInterval(() => refreshQueues().catch(showProblem), QUEUES_EVERY_MS);
  setInterval(drawChart, 1000);
  drawChart();
  start();
});
