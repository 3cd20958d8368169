// The live view's page script: plain browser JavaScript, inlined into the page by src/viz/page.ts
// (no outside assets). State arrives on /api/events (a snapshot, then every changed worker or
// job); shards, a job's history, log tail and patch come from the /api routes; actions POST to them.
"use strict";

const live = { workers: new Map(), jobs: new Map(), shards: [], shardsError: "", connected: false };
const ui = { selected: undefined, filter: { state: "", runtime: "", repository: "" }, detail: undefined, message: "" };

// ---------- helpers ----------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "onclick") el.addEventListener("click", v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}
const $ = (sel) => document.querySelector(sel);
const ago = (iso) => {
  if (!iso) return "";
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
};
/** The event that moved a machine, as its diagram labels it. */
function eventLabel(type) {
  const done = /^xstate\.done\.actor\.[^.]*\.(?:.*\.)?([^.]+)$/.exec(type);
  if (done) return "done: " + done[1];
  const error = /^xstate\.error\.actor\.[^.]*\.(?:.*\.)?([^.]+)$/.exec(type);
  if (error) return "error: " + error[1];
  if (type.startsWith("xstate.after")) return "after a delay";
  if (type === "xstate.init") return "start";
  return type;
}
const leaf = (states) => (states || []).map((s) => s.split(".").slice(1).join(".")).join(" + ");

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new Error(typeof data === "object" && data && data.error ? data.error : res.status + " " + res.statusText);
  return data;
}

// ---------- live state ----------
function connect() {
  const es = new EventSource("/api/events");
  es.addEventListener("snapshot", (m) => {
    const s = JSON.parse(m.data);
    live.workers = new Map(s.workers.map((w) => [w.workerId, w]));
    live.jobs = new Map(s.jobs.map((j) => [j.jobId, j]));
    live.connected = true;
    schedule();
  });
  es.addEventListener("worker", (m) => {
    const w = JSON.parse(m.data);
    if (w.record) live.workers.set(w.workerId, w);
    else live.workers.delete(w.workerId);
    schedule();
  });
  es.addEventListener("job", (m) => {
    const j = JSON.parse(m.data);
    if (j.record || j.machine) live.jobs.set(j.jobId, j);
    else live.jobs.delete(j.jobId);
    if (ui.selected && ui.selected.kind === "job" && ui.selected.id === j.jobId) refreshDetail();
    schedule();
  });
  es.onerror = () => {
    live.connected = false;
    schedule(); // EventSource reconnects by itself; the server sends a fresh snapshot then.
  };
}

async function pollShards() {
  try {
    const r = await api("GET", "/api/shards");
    live.shards = r.shards;
    live.shardsError = "";
  } catch (err) {
    live.shardsError = err.message;
  }
  schedule();
}

let detailTimer;
function refreshDetail() {
  clearTimeout(detailTimer);
  detailTimer = setTimeout(loadDetail, 250);
}
async function loadDetail() {
  const sel = ui.selected;
  if (!sel || sel.kind !== "job") return;
  const job = live.jobs.get(sel.id);
  const hasPatch = Boolean(job && job.record && job.record.artifacts.includes(sel.id + "/changes.patch"));
  const [run, logs, patch] = await Promise.allSettled([
    api("GET", "/api/runs/" + encodeURIComponent(sel.id)),
    api("GET", "/api/runs/" + encodeURIComponent(sel.id) + "/logs?lines=200"),
    hasPatch ? api("GET", "/api/runs/" + encodeURIComponent(sel.id) + "/patch") : Promise.reject(new Error("no patch (yet): a job stores one when it ends with changes")),
  ]);
  if (!ui.selected || ui.selected.id !== sel.id) return;
  ui.detail = {
    id: sel.id,
    run: run.status === "fulfilled" ? run.value : undefined,
    runError: run.status === "rejected" ? run.reason.message : "",
    logs: logs.status === "fulfilled" ? logs.value.lines : [],
    patch: patch.status === "fulfilled" ? patch.value : "",
    patchMissing: patch.status === "rejected" ? patch.reason.message : "",
  };
  schedule();
}

/** What an action's answer means, in words (the JSON is one click away in the API). */
function outcome(r) {
  if (r && r.state === "cancelling") return "asked " + r.workerId + " to stop it";
  if (r && r.state) return "now " + r.state;
  if (r && r.draining) return "draining";
  if (r && r.status && r.message) return "preflight " + r.status + (r.cached ? " (a result younger than its TTL)" : "") + ": " + r.message;
  return "done";
}

let messageTimer;
async function act(label, method, path, body) {
  clearTimeout(messageTimer);
  ui.message = label + "…";
  schedule();
  try {
    ui.message = label + ": " + outcome(await api(method, path, body));
  } catch (err) {
    ui.message = label + " failed: " + err.message;
  }
  messageTimer = setTimeout(() => {
    ui.message = "";
    schedule();
  }, 10000);
  refreshDetail();
  pollShards();
}

// ---------- rendering ----------
let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

function brokenLogins() {
  const out = [];
  for (const w of live.workers.values()) {
    for (const [login, a] of Object.entries(w.record.auth || {})) {
      if (a.state !== "ready" || a.status === "failed") out.push({ workerId: w.workerId, login, auth: a });
    }
  }
  return out;
}

function renderProblems() {
  const broken = brokenLogins();
  const flags = live.shards.filter((s) => s.flag);
  const box = $("#problems");
  box.replaceChildren(
    h("h2", {}, "Needs attention"),
    broken.length === 0 && flags.length === 0 ? h("p", { class: "ok" }, "Every login is ready and no shard is stuck.") : "",
    ...broken.map((b) =>
      h("div", { class: "remedy", "data-login": b.login, "data-worker": b.workerId },
        h("strong", {}, "Login " + b.login + " on " + b.workerId + " is " + b.auth.state),
        h("p", { class: "message" }, b.auth.message),
        h("small", {}, "checked " + ago(b.auth.checkedAt) + " — jobs on its shards wait in the stream; nothing is lost."),
      ),
    ),
    ...flags.map((s) => h("div", { class: "remedy shard-flag", "data-shard": s.subject }, h("strong", {}, s.subject), h("p", { class: "message" }, s.flag))),
  );
}

function renderShards() {
  $("#shards").replaceChildren(
    h("h2", {}, "Shards"),
    live.shardsError ? h("p", { class: "error" }, live.shardsError) : "",
    h("table", {},
      h("thead", {}, h("tr", {}, ["shard", "pending", "running", "queued", "oldest", "workers"].map((c) => h("th", {}, c)))),
      h("tbody", {}, live.shards.map((s) =>
        h("tr", { "data-shard": s.subject, class: s.flag ? "flagged" : "" },
          h("td", {}, s.subject),
          h("td", { "data-field": "pending" }, s.pending),
          h("td", {}, s.ackPending),
          h("td", {}, s.queued === undefined ? "" : s.queued),
          h("td", {}, s.oldestWaitingMs === undefined ? "" : Math.round(s.oldestWaitingMs / 1000) + " s"),
          h("td", {}, s.workers.map((w) => h("span", { class: "chip " + (w.ready ? "good" : "bad"), title: w.auth ? w.auth.message : "" }, w.workerId + (w.auth ? " · " + w.auth.state : "")))),
        ))),
    ),
  );
}

function select(kind, id) {
  ui.selected = { kind, id };
  ui.detail = undefined;
  if (kind === "job") loadDetail();
  schedule();
}

function renderWorkers() {
  const rows = [...live.workers.values()].sort((a, b) => a.workerId.localeCompare(b.workerId));
  $("#workers").replaceChildren(
    h("h2", {}, "Workers"),
    rows.length === 0 ? h("p", {}, "No worker is registered.") : "",
    h("table", {},
      h("thead", {}, h("tr", {}, ["worker", "state", "machine", "logins", "running", "heartbeat", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows.map((w) =>
        h("tr", { "data-worker": w.workerId, class: isSelected("worker", w.workerId) ? "selected" : "", onclick: () => select("worker", w.workerId) },
          h("td", {}, w.workerId),
          h("td", { "data-field": "state" }, w.record.state),
          h("td", { "data-field": "machine" }, w.machine ? leaf(w.machine.states) : ""),
          h("td", {}, Object.entries(w.record.auth || {}).map(([login, a]) =>
            h("span", { class: "chip " + (a.state === "ready" ? "good" : "bad"), title: login + " — " + a.message, "data-login": login, "data-auth-machine": w.auth[login] ? leaf(w.auth[login].states) : "" }, login.split(":")[0] + ": " + a.state))),
          h("td", {}, w.record.inFlight.length + "/" + w.record.concurrency),
          h("td", {}, ago(w.record.heartbeatAt)),
          h("td", {}, h("button", { "data-action": "drain", onclick: (e) => { e.stopPropagation(); if (confirm("Drain " + w.workerId + "? It finishes or hands back its jobs and exits.")) act("drain " + w.workerId, "POST", "/api/workers/" + encodeURIComponent(w.workerId) + "/drain", {}); } }, "Drain")),
        ))),
    ),
  );
}

function isSelected(kind, id) {
  return ui.selected && ui.selected.kind === kind && ui.selected.id === id;
}

function filteredJobs() {
  const f = ui.filter;
  return [...live.jobs.values()]
    .filter((j) => j.record)
    .filter((j) => !f.state || j.record.state === f.state)
    .filter((j) => !f.runtime || j.record.runtime === f.runtime)
    .filter((j) => !f.repository || j.record.repository.toLowerCase().includes(f.repository.toLowerCase()))
    .sort((a, b) => b.record.updatedAt.localeCompare(a.record.updatedAt));
}

function renderJobs() {
  const jobs = filteredJobs();
  const body = $("#jobs tbody");
  body.replaceChildren(...jobs.slice(0, 300).map((j) =>
    h("tr", { "data-job": j.jobId, class: (isSelected("job", j.jobId) ? "selected " : "") + "state-" + j.record.state, onclick: () => select("job", j.jobId) },
      h("td", {}, j.jobId),
      h("td", { "data-field": "state" }, j.record.state),
      h("td", { "data-field": "machine" }, j.machine ? leaf(j.machine.states) : ""),
      h("td", {}, j.record.runtime),
      h("td", { class: "repo" }, j.record.repository),
      h("td", {}, j.record.workerId || ""),
      h("td", {}, j.record.attempts + "/" + j.record.maxAttempts),
      h("td", {}, (j.record.result && j.record.result.outcome) || (j.record.waiting ? "waiting" : "")),
      h("td", {}, ago(j.record.updatedAt)),
    )));
  $("#jobs-count").textContent = jobs.length + " of " + live.jobs.size;
}

function renderDetail() {
  const box = $("#detail");
  const sel = ui.selected;
  if (!sel) return box.replaceChildren(h("p", { class: "hint" }, "Select a job or a worker to see its state on its diagram, its history and what to do."));
  if (sel.kind === "worker") {
    const w = live.workers.get(sel.id);
    if (!w) return box.replaceChildren(h("p", {}, "Worker " + sel.id + " is gone."));
    return box.replaceChildren(
      h("h2", {}, "Worker " + w.workerId),
      h("p", {}, "Machine: ", h("code", {}, w.machine ? leaf(w.machine.states) : "(no transition seen yet)"), w.machine ? " on " + eventLabel(w.machine.event) + ", " + ago(w.machine.at) : ""),
      h("p", {}, "Runtimes " + w.record.runtimes.join(", ") + " · shards " + w.record.shards.join(" ") + " · v" + w.record.version + " · up since " + ago(w.record.startedAt)),
      h("ul", {}, Object.entries(w.record.auth || {}).map(([login, a]) => h("li", {}, h("strong", {}, login), " " + a.state + " (" + a.status + "): " + a.message))),
    );
  }
  const j = live.jobs.get(sel.id);
  const d = ui.detail && ui.detail.id === sel.id ? ui.detail : undefined;
  const r = j && j.record;
  const events = d && d.run ? d.run.events.map((e) => e.event).filter((e) => e.type !== "state") : [];
  box.replaceChildren(
    h("h2", {}, "Job " + sel.id),
    r ? h("p", { class: "summary" }, h("span", { class: "badge state-" + r.state, "data-field": "state" }, r.state), " " + r.runtime + " · " + r.repository + " · " + r.subject + " · attempt " + r.attempts + "/" + r.maxAttempts + (r.workerId ? " · on " + r.workerId : "")) : h("p", {}, "No run record."),
    j && j.machine ? h("p", {}, "Machine: ", h("code", { "data-field": "machine" }, leaf(j.machine.states)), " on " + eventLabel(j.machine.event) + " (" + ago(j.machine.at) + ")") : "",
    r && r.waiting ? h("div", { class: "remedy" }, h("strong", {}, "Waiting since " + ago(r.waiting.since)), h("p", { class: "message" }, r.waiting.reason)) : "",
    r && r.preflight && r.preflight.status === "failed" ? h("div", { class: "remedy" }, h("strong", {}, "Preflight failed"), h("p", { class: "message" }, r.preflight.message)) : "",
    r && r.lastError ? h("p", { class: "error" }, r.lastError.code + ": " + r.lastError.message) : "",
    r && r.resumed ? h("p", { "data-field": "resumed" }, "Follow-up of ", h("code", {}, r.resumed.runId), " from its " + { branch: "published commit", patch: "changes", start: "starting commit" }[r.resumed.from] + "; session " + r.resumed.session + (r.resumed.sessionId ? " (" + r.resumed.sessionId + ")" : "")) : "",
    r && r.result && r.result.published ? h("p", { "data-field": "published" }, "Published " + r.result.published.branch + " at " + r.result.published.commit.slice(0, 12), r.result.published.pullRequest ? h("span", {}, " · ", /^https?:\/\//.test(r.result.published.pullRequest) ? h("a", { href: r.result.published.pullRequest, rel: "noreferrer" }, r.result.published.pullRequest) : r.result.published.pullRequest) : "") : "",
    h("div", { class: "actions" },
      h("button", { "data-action": "cancel", disabled: !r || !(r.state === "queued" || r.state === "running"), onclick: () => act("cancel " + sel.id, "POST", "/api/runs/" + encodeURIComponent(sel.id) + "/cancel", { reason: "cancelled from the live view" }) }, "Cancel"),
      h("button", { "data-action": "retry", disabled: !r || !["failed", "cancelled", "dead_letter"].includes(r.state), onclick: () => act("retry " + sel.id, "POST", "/api/runs/" + encodeURIComponent(sel.id) + "/retry", {}) }, "Retry"),
      h("button", { "data-action": "preflight", disabled: !r, onclick: () => act("preflight " + sel.id, "POST", "/api/runs/" + encodeURIComponent(sel.id) + "/preflight", {}) }, "Re-run preflight"),
    ),
    h("h3", {}, "Timeline"),
    d && d.runError ? h("p", { class: "error" }, d.runError) : "",
    h("ol", { class: "timeline" }, events.map((e) => h("li", { "data-event": e.type }, h("time", {}, e.at.slice(11, 19)), " ", h("strong", {}, e.type), " ", describe(e)))),
    h("h3", {}, "Log tail"),
    h("pre", { class: "log" }, d ? (d.logs.length ? d.logs.join("\n") : "(no output yet)") : "loading…"),
    h("h3", {}, "Patch"),
    h("pre", { class: "patch" }, d ? d.patch || d.patchMissing : "loading…"),
  );
}

function describe(e) {
  const parts = [];
  for (const k of ["workerId", "attempt", "status", "outcome", "reason", "message", "subject"]) if (e[k] !== undefined) parts.push(k + " " + e[k]);
  if (e.error) parts.push(e.error.code + ": " + e.error.message);
  return parts.join(" · ");
}

/** Every machine's diagram: each state shows how many actors are in it; the selected actor's is marked. */
function renderDiagrams() {
  const occupied = { worker: new Map(), auth: new Map(), job: new Map() };
  const add = (machine, states) => { for (const s of states || []) occupied[machine].set(s, (occupied[machine].get(s) || 0) + 1); };
  for (const w of live.workers.values()) {
    if (w.machine) add("worker", w.machine.states);
    for (const a of Object.values(w.auth)) add("auth", a.states);
  }
  for (const j of live.jobs.values()) if (j.machine && j.record && (j.record.state === "running" || j.record.state === "queued")) add("job", j.machine.states);
  let selected = [];
  const sel = ui.selected;
  if (sel && sel.kind === "job" && live.jobs.get(sel.id) && live.jobs.get(sel.id).machine) selected = live.jobs.get(sel.id).machine.states;
  if (sel && sel.kind === "worker" && live.workers.get(sel.id)) {
    const w = live.workers.get(sel.id);
    selected = [...(w.machine ? w.machine.states : []), ...Object.values(w.auth).flatMap((a) => a.states)];
  }
  for (const svg of document.querySelectorAll("svg.machine")) {
    const machine = svg.dataset.machine;
    for (const g of svg.querySelectorAll("g.state")) {
      const id = g.dataset.state;
      const n = occupied[machine] ? occupied[machine].get(id) || 0 : 0;
      g.classList.toggle("active", n > 0);
      g.classList.toggle("selected", selected.includes(id));
      g.dataset.count = String(n);
      const title = g.querySelector("title");
      if (title) title.textContent = id + (n ? " — " + n + " now" : "");
    }
  }
  for (const name of Object.keys(occupied)) {
    const legend = $("#legend-" + name);
    if (legend) legend.textContent = [...occupied[name]].map(([s, n]) => leaf([s]) + " ×" + n).join("   ") || "nothing in flight";
  }
}

function render() {
  $("#conn").textContent = live.connected ? "live" : "reconnecting…";
  $("#conn").className = live.connected ? "good" : "bad";
  $("#message").textContent = ui.message;
  renderProblems();
  renderShards();
  renderWorkers();
  renderJobs();
  renderDetail();
  renderDiagrams();
}

// ---------- wiring ----------
for (const [id, key] of [["filter-state", "state"], ["filter-runtime", "runtime"], ["filter-repository", "repository"]]) {
  $("#" + id).addEventListener("input", (e) => {
    ui.filter[key] = e.target.value;
    schedule();
  });
}
// A diagram fits its panel; a click shows it at full size (scroll to move around).
for (const figure of document.querySelectorAll(".diagrams figure")) figure.addEventListener("click", () => figure.classList.toggle("zoomed"));
connect();
pollShards();
setInterval(pollShards, 3000);
setInterval(schedule, 5000); // the "ago" times
