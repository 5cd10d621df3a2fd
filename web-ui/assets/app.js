// deskhand's plan UI: plain DOM, no framework, no CDN. Text always goes in
// through textContent, never as HTML.
"use strict";

const $main = document.getElementById("main");
const $alert = document.getElementById("alert");
let live = null; // the event stream of the run on screen

// The session: the launch link's token is traded once for a secret that
// this tab keeps (sessionStorage: this origin and port only, this tab only,
// gone when the tab closes, never sent by the browser on its own) and sends
// as a header. A cookie would reach every server on this host.
const SESSION_KEY = "deskhand-session";
let session = sessionStorage.getItem(SESSION_KEY);

const NO_SESSION = "This tab has no deskhand session. Run `deskhand open` in the workspace folder for a new link (a link works once, for 10 minutes; a reload keeps its session, a new tab needs a new link).";

function sessionLost(why) {
  session = null;
  sessionStorage.removeItem(SESSION_KEY);
  if (live) { live.close(); live = null; }
  document.getElementById("workspace").textContent = "";
  $main.replaceChildren(h("section", { class: "card", id: "no-session" },
    h("h2", {}, "Open deskhand again"),
    why ? h("p", {}, why.replace(/^refused: /, "")) : null,
    h("p", {}, NO_SESSION)));
  showError("");
}

async function startSession() {
  const token = new URLSearchParams(location.search).get("token");
  if (!token) return;
  history.replaceState(null, "", "/" + location.hash);
  const res = await fetch("/api/session", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token }) });
  const text = await res.text();
  let data = null;
  try { data = JSON.parse(text); } catch (_) { data = null; }
  if (res.ok && data && data.session) {
    session = data.session;
    sessionStorage.setItem(SESSION_KEY, session);
  } else if (!session) {
    throw new SessionError((data && data.error) || text);
  }
}

class SessionError extends Error {}

function authHeaders() {
  return session ? { "X-Deskhand-Session": session } : {};
}

// A path under output/ as a URL: each segment encoded, so `#`, `?` and `%`
// in a name stay part of it.
function outputUrl(prefix, path) {
  return prefix + path.split("/").map(encodeURIComponent).join("/");
}

// Downloads and the framed PDF are navigations, which cannot send the
// session header: they carry a ticket the server gives for that one URL,
// once, for a minute.
async function withTicket(url) {
  const t = await api("POST", "/api/tickets", { path: url });
  return `${url}?ticket=${encodeURIComponent(t.ticket)}`;
}

// Names from files and runs: direction controls are shown as visible
// escapes and the name is isolated, so it cannot reorder the text around it.
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
function name(text) {
  return h("bdi", {}, String(text).replace(BIDI, (c) => `<U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}>`));
}

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// An error from an action: a lost session gets its own screen.
function failed(e) {
  if (e instanceof SessionError) sessionLost(e.message);
  else showError(e.message);
}

function showError(message) {
  $alert.textContent = message;
  $alert.hidden = !message;
  if (message) $alert.scrollIntoView({ block: "nearest" });
}

async function api(method, url, body) {
  const opts = { method, headers: authHeaders() };
  if (body !== undefined) {
    opts.headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(url, opts);
  } catch (e) {
    throw new Error("deskhand is not answering. Is `deskhand serve` still running? Start it again, then reload this page.");
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = null; }
  if (res.status === 401) throw new SessionError((data && data.error) || text);
  if (!res.ok) throw new Error((data && data.error) || text || `request failed (${res.status})`);
  return data;
}

function title(text) {
  document.title = `${text} · deskhand`;
}

// A folder picker under a grant's row: the folders of the workspace (or,
// going up, of the rest of the computer), one click to open, one to choose.
async function picker(wrap, input) {
  const old = wrap.querySelector(".picker");
  if (old) return old.remove();
  const box = h("div", { class: "picker", role: "group", "aria-label": "Choose a folder" });
  wrap.append(box);
  const show = async (path) => {
    let list;
    try {
      list = await api("GET", `/api/folders?path=${encodeURIComponent(path)}`);
    } catch (e) {
      if (path !== "") return show("");
      return failed(e);
    }
    const where = list.path === "" ? "the workspace" : list.path;
    box.replaceChildren(...[
      h("p", { class: "muted" }, `In ${where}`),
      h("div", { class: "row" },
        list.parent !== null ? h("button", { type: "button", class: "fit", onclick: () => show(list.parent) }, "Up") : null,
        h("button", { type: "button", class: "primary fit", disabled: list.path === "" && list.inside ? "" : null,
          onclick: () => { input.value = list.path; box.remove(); input.focus(); } }, `Choose ${where}`)),
      list.folders.length
        ? h("ul", { class: "folders" }, list.folders.map((f) => h("li", {},
          h("button", { type: "button", class: "link", onclick: () => show(list.path === "" ? f : `${list.path}/${f}`.replace(/^\/\//, "/")) }, `${f}/`))))
        : h("p", { class: "muted" }, "No folders in here."),
      list.truncated ? h("p", { class: "muted" }, "Only the first 1000 folders are shown; type the path instead.") : null,
    ].filter(Boolean));
  };
  await show(input.value.trim());
}

// ---------- New task ----------

// The folders a form grants, one row each (a path, "may change it", a
// picker), as the new-task and schedule forms ask for them.
function grantRows(folders) {
  const grants = h("div", { id: "grants" });
  const datalist = h("datalist", { id: "folders" }, folders.map((f) => h("option", { value: f })));
  const addGrant = (path = "", write = false) => {
    const n = grants.children.length;
    const input = h("input", { type: "text", list: "folders", value: path, "aria-label": `Folder ${n + 1} to grant`, placeholder: "projects/receipts", class: "grant-path" });
    const wrap = h("div", { class: "grant" });
    const row = h("div", { class: "row" }, input,
      h("label", { class: "fit" }, h("input", { type: "checkbox", class: "grant-write", checked: write }), " may change it"),
      h("button", { type: "button", class: "fit", onclick: () => picker(wrap, input) }, "Browse…"),
      h("button", { type: "button", class: "fit", onclick: () => wrap.remove() }, "Remove"));
    wrap.append(row);
    grants.append(wrap);
  };
  const grantsOf = () => [...grants.querySelectorAll(".grant")].map((r) => ({
    path: r.querySelector(".grant-path").value,
    write: r.querySelector(".grant-write").checked,
  }));
  return { grants, datalist, addGrant, grantsOf };
}

async function viewNew() {
  title("New task");
  const state = await api("GET", "/api/state");
  document.getElementById("workspace").textContent = `Workspace: ${state.workspace}`;
  const { grants, datalist, addGrant, grantsOf } = grantRows(state.folders);
  addGrant("projects");
  const outcome = h("textarea", { id: "outcome", required: true, placeholder: "Make an inventory of the projects folder" });
  const mode = h("select", { id: "mode" },
    h("option", { value: "ask" }, "Ask before each step"),
    h("option", { value: "act" }, "Act without asking (deletions still ask)"));
  const model = h("input", { type: "text", id: "model", placeholder: "configured model, or offline" });
  const submit = h("button", { type: "submit", class: "primary" }, "Start");
  const form = h("form", { class: "card", onsubmit: async (ev) => {
    ev.preventDefault();
    showError("");
    submit.disabled = true;
    submit.textContent = "Starting…";
    try {
      const body = {
        outcome: outcome.value,
        mode: mode.value,
        model: model.value.trim() || null,
        grants: grantsOf(),
      };
      const r = await api("POST", "/api/tasks", body);
      location.hash = `#/run/${encodeURIComponent(r.run)}`;
    } catch (e) {
      failed(e);
      submit.disabled = false;
      submit.textContent = "Start";
    }
  } },
    h("h2", {}, "What do you want done?"),
    h("label", { for: "outcome" }, "The outcome, in words"), outcome,
    h("label", {}, "Folders deskhand may see"), grants, datalist,
    h("button", { type: "button", onclick: () => addGrant() }, "Add a folder"),
    h("label", { for: "mode" }, "Permission mode"), mode,
    h("details", { class: "advanced" }, h("summary", {}, "Advanced"),
      h("label", { for: "model" }, "Model (leave empty for the configured one, or the offline planner)"), model),
    h("p", {}, submit));
  const skills = h("section", { class: "card" }, h("h2", {}, "Skills"),
    h("ul", {}, state.skills.map((s) => h("li", {}, h("strong", {}, s.name), ": ", s.description,
      s.untrusted ? h("span", { class: "muted" }, ` (not run: ${s.untrusted}; to run it: deskhand skills trust ${s.name})`) : ""))));
  $main.replaceChildren(form, skills);
  outcome.focus();
}

// ---------- A run ----------

// What a run is now comes from the server's fold of its journal
// (GET /api/runs/{run}/view: the `RunView` resume, the ledger and `deskhand
// show` read, and each sub-agent's); the page folds nothing itself.

// A run's plan: each step's status, what it declared, what was blocked in
// it and the sub-agents it started (their plans nested), then its changes and
// the running call's progress.
// A step's status in words: a step waiting for the person's approval (or
// answer) is "waiting for you", and the step a stopped run stopped at is
// "stopped", not "failed".
function stepLabel(s, n, v) {
  const [ended] = v.ended || [null];
  const asked = v.open_questions.some((q) => q.step === n && q.kind === "step");
  if (s.status === "pending" && asked) return "waiting for you";
  if (s.status === "in_progress" && ended === "needs_input") return "waiting for you";
  if (s.status === "failed" && ended === "stopped") return "stopped";
  return { pending: "to do", in_progress: "in progress" }[s.status] || s.status;
}

// How a run is, in words.
function runLabel(status) {
  return { needs_input: "waiting for you", running: "running" }[status] || status;
}

function planView(served, v, child) {
  const steps = v.plan.steps;
  const blocked = (b) => h("div", { class: "blocked" }, `Blocked: ${b.reason}`);
  const notes = [
    ...v.blocked.filter((b) => !steps[b.step - 1]).map((b) => ({ at: b.at, text: `Blocked: ${b.reason}`, cls: "blocked" })),
    ...v.changes_applied.map((c) => ({ at: c.at, text: `Applied ${c.count} change(s) (approved by ${c.text})` })),
    ...v.changes_refused.map((c) => ({ at: c.at, text: `Changes not applied: ${c.text}`, cls: "blocked" })),
  ].sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return h("div", { class: child ? "sub" : "" },
    child ? h("p", {}, h("strong", {}, "Sub-agent: "), child.outcome) : null,
    v.plan.reason ? h("p", { class: "muted" }, `Revised: ${v.plan.reason}`) : null,
    steps.length === 0 ? h("p", { class: "muted" }, v.ended ? "No plan was made." : "Planning…") : null,
    h("ol", { class: "plan", "aria-label": child ? "Sub-agent plan" : "Plan" }, steps.map((s, i) => {
      const eff = s.effects || {};
      const parts = [];
      if (eff.reads && eff.reads.length) parts.push(`reads ${eff.reads.join(", ")}`);
      if (eff.writes && eff.writes.length) parts.push(`writes ${eff.writes.join(", ")}`);
      if (eff.actions && eff.actions.length) parts.push(`acts: ${eff.actions.join(", ")}`);
      return h("li", { "data-step": i + 1, "data-status": s.status },
        h("span", { class: `status s-${s.status}` }, stepLabel(s, i + 1, v)), " ", s.title,
        parts.length ? h("div", { class: "effects" }, parts.join("; ")) : null,
        v.blocked.filter((b) => b.step === i + 1).map(blocked),
        v.children.filter((c) => c.step === i + 1).map((c) => planView(served, served.sub_agents[c.run], c)));
    })),
    notes.length ? h("ul", { class: "notes" }, notes.map((n) => h("li", { class: n.cls || "" }, n.text))) : null,
    v.progress ? h("div", {},
      h("label", {}, v.progress.message),
      v.progress.total ? h("progress", { value: v.progress.done, max: v.progress.total }) : h("progress", {})) : null);
}

// The activity log's line for an event, if it gets one: the log is the
// event stream as it comes. A tool call reads as what it did, in the
// server's words (`said`, from the runtime's `words`, as the terminal says
// it); its tool's own name (`tool`) shows with "Show tool names".
function logLine(msg) {
  const e = msg.event;
  switch (e.type) {
    case "tool_call_begin": return { said: msg.said, tool: `${e.tool}.${e.operation}` };
    case "tool_call_end": return msg.said ? { said: msg.said } : null;
    case "resumed": return { said: "Resumed" };
    case "notice": case "mode_changed": return { said: e.message };
    case "needs_input": return { said: `Question: ${e.question}` };
    case "undone": return { said: `Undone: ${e.restored} change(s) put back` };
    case "connector_tool_quarantined": return { said: `Held back the tool ${e.tool} of the connector ${e.connector} (${e.change}): review it on the Connectors page` };
    default: return null;
  }
}

// Whether the activity log shows each call's tool name; kept across runs.
let showTools = localStorage.getItem("deskhand.showTools") === "1";

function logItem(l) {
  if (!showTools) return l.said ? h("li", {}, l.said) : null;
  return h("li", {}, l.said ? `${l.said} ` : "", l.tool ? h("code", { class: "tool" }, l.tool) : null);
}

// What a run no one watched (a schedule's) needed that its approval did not
// cover, when it stopped for the person with no question to answer: the
// runtime's last blocked attempt ("stopped for you: ..."), which its summary tells.
function heldFor(v, summary) {
  const last = (v.blocked || []).at(-1);
  const what = last && last.reason.startsWith("stopped for you: ") ? last.reason.slice("stopped for you: ".length) : "";
  return what && !what.startsWith("the run asks you: ") && summary.includes(what) ? what : null;
}

// The run's question, answered here: the run resumes with the answer. An
// answer deskhand cannot use is asked again, with why.
function askCard(id, question, refresh) {
  const input = h("input", { type: "text", id: "answer", "aria-label": "Your answer", autocomplete: "off" });
  const send = h("button", { type: "submit", class: "primary fit" }, "Answer");
  return h("form", { class: "card approval", id: "question", "aria-label": "deskhand asks", onsubmit: async (ev) => {
    ev.preventDefault();
    if (!input.value.trim()) return input.focus();
    showError("");
    send.disabled = true;
    try {
      await api("POST", `/api/runs/${encodeURIComponent(id)}/resume`, { answer: input.value });
      refresh();
    } catch (e) { send.disabled = false; failed(e); }
  } },
    h("h3", {}, "deskhand asks"),
    h("p", { class: "question" }, question),
    h("div", { class: "row" }, input, send));
}

// A new instruction for a run that ended: a new turn with what it did so
// far, its steps approved as any run's.
function continueCard(id, refresh) {
  const say = h("textarea", { id: "say", rows: 2, placeholder: "Now for April too" });
  const send = h("button", { type: "submit", class: "primary fit" }, "Continue");
  return h("form", { class: "card", id: "continue", onsubmit: async (ev) => {
    ev.preventDefault();
    if (!say.value.trim()) return say.focus();
    showError("");
    send.disabled = true;
    try {
      await api("POST", `/api/runs/${encodeURIComponent(id)}/continue`, { say: say.value });
      refresh();
    } catch (e) { send.disabled = false; failed(e); }
  } },
    h("label", { for: "say" }, "Ask for more in this run"), say,
    h("p", {}, send));
}

// Renames and moves as a table: each name before and after, and where the
// new name came from (a date read from the file's name, or only its
// modification time, which is flagged); then what the tool left alone.
function movesTable(a) {
  const folders = [...new Set(a.moves.map((m) => m.folder))];
  return [
    h("p", { class: "muted" }, `In ${folders.join(", ")}:`),
    h("table", { class: "moves" },
      h("thead", {}, h("tr", {}, h("th", {}, "Before"), h("th", {}, "After"), h("th", {}, "Why"))),
      h("tbody", {}, a.moves.map((m) => h("tr", { class: m.flagged ? "flag" : "" },
        h("td", {}, m.before), h("td", {}, m.after),
        h("td", {}, m.flagged ? "⚠ " : "", m.why || ""))))),
    a.skipped && a.skipped.length
      ? h("details", { class: "skipped" }, h("summary", {}, `${a.skipped.length} left as they are`),
        h("ul", {}, a.skipped.map((s) => h("li", {}, `${s.name}: ${s.reason}`))))
      : null,
  ];
}

// An action's value: short ones as they are, long ones folded (their start
// shown, the rest a click away).
function argValue(v) {
  const lines = v.split("\n");
  if (v.length <= 160 && lines.length <= 4) return h("span", { class: "arg" }, v);
  return h("details", { class: "arg" },
    h("summary", {}, `${lines[0].slice(0, 80)}… (${v.length} characters)`),
    h("pre", { class: "text" }, v));
}

// An action waiting for the person: through which connector (or the
// browser), which tool, in which step, and the call's arguments as rows
// (the server keeps them beside the question: GET /api/approvals/{id}).
function actionCard(a) {
  const body = h("div", {}, h("p", { class: "muted", role: "status" }, "Loading what it would send …"));
  const section = h("section", { class: "card approval action", "aria-label": "Approval needed", "data-approval": a.approval },
    h("h3", {}, a.title), body);
  const decide = async (answer, btns) => {
    btns.forEach((b) => (b.disabled = true));
    try { await api("POST", `/api/approvals/${encodeURIComponent(a.approval)}`, answer); } catch (e) { failed(e); }
  };
  api("GET", `/api/approvals/${encodeURIComponent(a.approval)}`).then((c) => {
    const once = h("button", { class: "primary", onclick: () => decide({ approve: true }, btns) }, "Allow once");
    const always = c.always ? h("button", { class: "always", onclick: () => decide({ approve: true, always: true }, btns) }, "Always allow this tool") : null;
    const no = h("button", { onclick: () => decide({ approve: false }, btns) }, "Refuse");
    const btns = [once, always, no].filter(Boolean);
    body.replaceChildren(...[
      h("p", {}, "Through ", name(c.via), ", in step ", String(c.step), "."),
      c.description ? h("p", { class: "tool-description" }, c.description) : null,
      c.destructive ? h("p", { class: "delete" }, "This tool says it destroys data: each of its calls asks you.") : null,
      c.arguments.length
        ? h("table", { class: "arguments" }, h("tbody", {}, c.arguments.map((r) => h("tr", {}, h("th", { scope: "row" }, name(r.key)), h("td", {}, argValue(r.value))))))
        : h("p", { class: "muted" }, "No arguments."),
      c.always ? h("p", { class: "muted" }, "\"Always allow\" lets this tool's calls run without asking in your later runs too, within the steps you approve; revoke it on the Connectors page.") : null,
      h("div", { class: "row" }, btns)].filter(Boolean));
  }).catch((e) => {
    if (e instanceof SessionError) return sessionLost(e.message);
    // No card kept: the question as the journal has it, answered the same way.
    const yes = h("button", { class: "primary", onclick: () => decide({ approve: true }, [yes, no]) }, "Allow once");
    const no = h("button", { onclick: () => decide({ approve: false }, [yes, no]) }, "Refuse");
    body.replaceChildren(h("pre", {}, a.details), h("div", { class: "row" }, yes, no));
  });
  return section;
}

function approvalCard(a) {
  if (a.kind === "action") return actionCard(a);
  const moves = a.moves && a.moves.length ? a.moves : null;
  // With the table shown, the text's own before/after lines are left out.
  const textLines = a.details.split("\n").filter((l) => l.trim() && !(moves && l.includes("  ->  ")));
  const lines = textLines.map((l) => h("div", { class: l.includes("DELETE") ? "delete" : "" }, l));
  const decide = async (approve, btns) => {
    btns.forEach((b) => (b.disabled = true));
    try { await api("POST", `/api/approvals/${encodeURIComponent(a.approval)}`, { approve }); } catch (e) { failed(e); }
  };
  const yes = h("button", { class: "primary", onclick: () => decide(true, [yes, no]) }, a.kind === "changes" ? "Apply these changes" : "Approve step");
  const no = h("button", { onclick: () => decide(false, [yes, no]) }, "Reject");
  return h("section", { class: "card approval", "aria-label": "Approval needed" },
    h("h3", {}, a.kind === "changes" ? a.title : `Step ${a.step}: ${a.title}`),
    a.deletions ? h("p", { class: "delete" }, `${a.deletions} deletion(s): deleted files go to the workspace trash.`) : null,
    moves ? movesTable(a) : null,
    lines.length ? h("pre", {}, lines) : null, h("div", { class: "row" }, yes, no));
}

// The run's own deliverables (what its applied changes made in output/),
// then everything in output/, with one preview for both.
async function deliverables(own) {
  const files = await api("GET", "/api/output");
  const preview = h("div", { class: "scroll", id: "preview" });
  const list = (fs) => h("ul", {}, fs.map((f) => h("li", {},
    name(f.path), ` (${f.size} bytes) `,
    downloadLink(f.path), " ",
    h("button", { onclick: () => showPreview(f.path, preview) }, "Preview"))));
  return [
    own ? h("section", { class: "card", id: "made" }, h("h2", {}, "What this run made"),
      own.length === 0 ? h("p", { class: "muted" }, "This run made no files in output/.") : list(own)) : null,
    h("section", { class: "card" }, h("h2", {}, "Deliverables in output/"),
      files.length === 0 ? h("p", { class: "muted" }, "None yet.") : null,
      list(files), preview),
  ].filter((s) => s);
}

function downloadLink(path) {
  const url = outputUrl("/files/output/", path);
  const file = path.split("/").pop();
  return h("a", { href: url, download: file, onclick: async (ev) => {
    ev.preventDefault();
    try {
      const go = h("a", { href: await withTicket(url), download: file, hidden: true });
      document.body.append(go);
      go.click();
      go.remove();
    } catch (e) { failed(e); }
  } }, "Download");
}

function table(rows) {
  return h("table", {}, rows.map((r, i) => h("tr", {}, r.map((c) => h(i === 0 ? "th" : "td", {}, cellText(c))))));
}

function cellText(c) {
  if (c === null || c === undefined) return "";
  if (typeof c !== "object") return String(c);
  // A formula shows the value the spreadsheet computed, where the file stores one.
  if ("formula" in c) return "value" in c && c.value !== null ? cellText(c.value) : `=${c.formula}`;
  if ("amount" in c) return `${c.amount} ${c.currency || ""}`;
  if ("date" in c) return c.date;
  return JSON.stringify(c);
}

async function showPreview(path, into, page) {
  showError("");
  into.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    const p = await api("GET", `${outputUrl("/api/preview/output/", path)}${page ? `?page=${page}` : ""}`);
    const more = p.truncated ? h("p", { class: "muted" }, "Only the start of this file is shown; download it for the rest.") : null;
    if (p.kind === "table") into.replaceChildren(table(p.rows), more || "");
    else if (p.kind === "sheets") into.replaceChildren(...(p.data.sheets || []).map((s) => h("div", {}, h("h3", {}, name(s.name)), table([s.header || [], ...(s.rows || [])]))));
    else if (p.kind === "pdf") into.replaceChildren(await pdfPage(path, p, into));
    else into.replaceChildren(h("pre", { class: "text" }, p.text), more || "");
  } catch (e) {
    if (e instanceof SessionError) return sessionLost(e.message);
    into.replaceChildren(h("p", {}, e.message));
  }
}

// One page of a PDF: the browser's own viewer in a frame (showing the
// server's inert copy, or why there is none), the page's text (read by the
// sandboxed pdf tool) below it, and buttons to turn pages.
async function pdfPage(path, p, into) {
  const go = (page) => showPreview(path, into, page);
  let shown;
  if (p.view) {
    const [view, fragment] = p.view.split("#");
    const src = `${await withTicket(view)}${fragment ? `#${fragment}` : ""}`;
    shown = h("iframe", { src, title: `${path}, page ${p.page}`, class: "pdf-page" });
  } else {
    shown = h("p", { class: "not-shown", role: "status" }, `The page is not shown: ${p.not_shown}`);
  }
  return h("div", { class: "pdf" },
    h("div", { class: "row" },
      h("button", { onclick: () => go(p.page - 1), disabled: p.page <= 1 ? "" : null }, "Previous page"),
      h("span", { class: "muted", "aria-live": "polite" }, `Page ${p.page} of ${p.pages}`),
      h("button", { onclick: () => go(p.page + 1), disabled: p.page >= p.pages ? "" : null }, "Next page")),
    shown,
    h("h3", {}, "Text on this page"),
    h("pre", { class: "text pdf-text" }, p.text || "(no text on this page: a scanned image?)"));
}

// The run's events as they are journaled: a fetch stream (so it carries the
// session header, which an EventSource cannot), read as server-sent events,
// reconnecting from the last event seen.
function follow(id, onEvent) {
  const ctrl = new AbortController();
  let last = 0;
  let closed = false;
  (async () => {
    while (!closed) {
      try {
        const res = await fetch(`/api/runs/${encodeURIComponent(id)}/events?after=${last}`, { headers: authHeaders(), signal: ctrl.signal });
        if (res.status === 401) { sessionLost(await res.text()); return; }
        if (!res.ok) { showError(await res.text()); return; }
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let end;
          while ((end = buf.indexOf("\n\n")) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
              else if (line.startsWith("id:")) last = Number(line.slice(3).trim()) || last;
            }
            if (data.length) onEvent(JSON.parse(data.join("\n")));
          }
        }
      } catch (_) { /* the connection dropped: try again below */ }
      if (!closed) await new Promise((r) => setTimeout(r, 1000));
    }
  })();
  return { close() { closed = true; ctrl.abort(); } };
}

async function viewRun(id) {
  title(`Run ${id}`);
  const viewUrl = `/api/runs/${encodeURIComponent(id)}/view`;
  let served = await api("GET", viewUrl);
  const top = h("div", {});
  const approvals = h("div", {});
  const plan = h("section", { class: "card", "aria-live": "polite" });
  const log = h("ol", { class: "log" });
  const actions = h("div", {});
  const files = h("div", {});
  const lines = [];
  const showLog = () => log.replaceChildren(...lines.map(logItem).filter((li) => li));
  const toggle = h("input", { type: "checkbox", id: "show-tools", onchange: () => {
    showTools = toggle.checked;
    localStorage.setItem("deskhand.showTools", showTools ? "1" : "0");
    showLog();
  } });
  toggle.checked = showTools;
  const logCard = h("section", { class: "card" },
    h("div", { class: "row" }, h("h2", {}, "Activity"), h("label", { class: "fit muted" }, toggle, " Show tool names")), log);
  $main.replaceChildren(top, approvals, plan, actions, files, logCard);
  // Each open question's card, kept while it stays open (its focus, its disabled buttons).
  let cards = new Map();
  let shownActions = null;
  const resume = async (btn) => {
    btn.disabled = true;
    showError("");
    try {
      await api("POST", `/api/runs/${encodeURIComponent(id)}/resume`, {});
      refresh();
    } catch (e) { btn.disabled = false; failed(e); }
  };
  const render = () => {
    const v = served.view;
    const [ended, summary] = v.ended || [null, ""];
    const status = ended || (served.interrupted ? "interrupted" : "running");
    // A task the planner cannot do is answered (why, what it can do, how to
    // set up a model), not shown as a failure.
    const answered = v.declined && ended === "failed";
    top.replaceChildren(h("h2", {}, name(v.task ? v.task.outcome : id)),
      h("p", { class: "muted" }, `Run ${id} · ${answered ? "answered" : runLabel(status)}${summary && ended !== "needs_input" && !answered ? ": " + summary : ""}`),
      ...(answered ? [h("section", { class: "card answer", id: "answer", "aria-label": "deskhand's answer" }, h("h3", {}, "deskhand's answer"), h("p", { class: "said" }, summary))] : []));
    if (ended && ended !== "needs_input") top.setAttribute("data-ended", ended);
    else top.removeAttribute("data-ended");
    // What an interrupted run asked cannot be answered: no process waits for it.
    const open = served.interrupted ? [] : [v, ...Object.values(served.sub_agents)].flatMap((r) => r.open_questions);
    const next = new Map(open.map((q) => [q.approval, cards.get(q.approval) || approvalCard(q)]));
    if ([...next.keys()].join("\n") !== [...cards.keys()].join("\n")) approvals.replaceChildren(...next.values());
    cards = next;
    plan.hidden = answered;
    plan.replaceChildren(h("h2", {}, "Plan"), planView(served, v, null));
    const shown = ended === "needs_input" ? "waiting" : ended ? "ended" : served.interrupted ? "interrupted" : "running";
    // A question asked again (a near-miss) is a new card.
    const key = `${shown}:${served.changes}:${shown === "waiting" ? summary : ""}`;
    if (key === shownActions) return;
    shownActions = key;
    if (shown === "waiting" && heldFor(v, summary)) {
      const btn = h("button", { class: "primary fit", onclick: () => resume(btn) }, "Go on with it");
      actions.replaceChildren(h("section", { class: "card", id: "held", role: "status" },
        h("h3", {}, "Stopped for you"),
        h("p", { class: "question" }, summary),
        h("p", {}, "Go on here and it continues from where it stopped, in its own mode, with you to ask."),
        btn));
    } else if (shown === "waiting") {
      actions.replaceChildren(askCard(id, summary, refresh));
      actions.querySelector("input").focus();
    } else if (shown === "ended") {
      const undoNote = served.changes === "applied"
        ? h("button", { class: "fit", onclick: () => undo(id) }, "Undo this run's changes")
        : served.changes === "undone" ? h("p", { class: "muted fit", id: "undone" }, "This run's changes were undone.") : null;
      const makeSkill = ended === "succeeded" && !v.declined && served.changes === "applied"
        ? h("a", { href: `#/skill-from/${encodeURIComponent(id)}`, class: "fit" }, "Make this a skill") : null;
      const every = ended === "succeeded" && !v.declined
        ? h("a", { href: `#/schedules/new?from=${encodeURIComponent(id)}`, class: "fit" }, "Run this every …") : null;
      actions.replaceChildren(
        h("p", { class: "row" }, undoNote, h("a", { href: `#/ledger/${encodeURIComponent(id)}`, class: "fit" }, "Ledger"), makeSkill, every),
        continueCard(id, refresh));
      deliverables(v.declined ? null : served.deliverables).then((d) => files.replaceChildren(...d)).catch(failed);
    } else if (shown === "interrupted") {
      const btn = h("button", { class: "primary fit", onclick: () => resume(btn) }, "Resume the run");
      actions.replaceChildren(h("section", { class: "card", id: "interrupted", role: "status" },
        h("h3", {}, "This run is not running"),
        h("p", {}, "deskhand stopped while this run was going (perhaps waiting for your approval), or it runs in a terminal. Resume it here to go on from where it was: finished steps are not redone, and any approval is asked again."),
        btn));
    } else {
      actions.replaceChildren(h("div", { class: "row" }, h("button", { class: "danger fit", onclick: async () => {
        try { await api("POST", `/api/runs/${encodeURIComponent(id)}/stop`, {}); } catch (e) { failed(e); }
      } }, "Stop the run")));
    }
  };
  // One request at a time; events that arrive meanwhile ask for one more.
  let fetching = false;
  let again = false;
  const refresh = async () => {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      do {
        again = false;
        const next = await api("GET", viewUrl);
        if (live !== stream) return;
        served = next;
        render();
      } while (again);
    } catch (e) {
      if (live === stream) failed(e);
    } finally { fetching = false; }
  };
  let scheduled = false;
  if (live) live.close();
  const stream = follow(id, (msg) => {
    const line = logLine(msg);
    if (line !== null) lines.push(line);
    if (lines.length > 200) lines.shift();
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      showLog();
      refresh();
    });
  });
  live = stream;
  render();
}

async function undo(id, force = false) {
  showError("");
  try {
    const r = await api("POST", `/api/runs/${encodeURIComponent(id)}/undo`, { force });
    showError("");
    alertOk(`Undone: ${r.restored} change(s) put back${r.trashed ? `; ${r.trashed} newer version(s) moved to the trash` : ""}.`);
    return true;
  } catch (e) {
    if (!force && e.message.includes("--force") && confirm(`${e.message}\n\nRestore anyway? The current versions go to the trash.`)) return undo(id, true);
    failed(e);
    return false;
  }
}

function alertOk(text) {
  const note = h("p", { class: "card", role: "status" }, text);
  $main.prepend(note);
}

// ---------- History, ledger, files ----------

async function viewHistory() {
  title("History");
  const runs = await api("GET", "/api/runs");
  $main.replaceChildren(h("section", { class: "card" }, h("h2", {}, "Past runs"),
    runs.length === 0 ? h("p", { class: "muted" }, "No runs yet.") : null,
    h("ul", {}, runs.map((r) => h("li", {},
      h("a", { href: `#/run/${encodeURIComponent(r.id)}` }, name(r.outcome || r.id)), ` · ${r.interrupted ? "interrupted" : r.declined ? "answered" : runLabel(r.status)}${r.changes === "undone" ? " · undone" : ""} · ${r.created_at} `,
      h("a", { href: `#/ledger/${encodeURIComponent(r.id)}` }, "Ledger"), " ",
      r.changes === "applied" ? h("button", { onclick: () => undo(r.id).then((ok) => ok && viewHistory()) }, "Undo") : null)))));
}

async function viewLedger(id) {
  title(`Ledger ${id}`);
  const l = await api("GET", `/api/runs/${encodeURIComponent(id)}/ledger`);
  $main.replaceChildren(h("section", { class: "card ledger" }, h("h2", {}, `Ledger of ${id}`), ...markdown(l.text)));
}

// The ledger's Markdown (ledger.rs writes it: headings, lists, tables,
// fenced blocks, code spans, bold; HTML characters as entities) as DOM
// nodes. Every piece of text goes in as a text node: nothing is parsed as HTML.
function markdown(md) {
  const lines = md.replace(/\r\n/g, "\n").split("\n");
  const out = [];
  const isBlock = (l) => /^(`{3,}|#{1,6} |\s*- |\|)/.test(l);
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^(`{3,})/);
    if (fence) {
      const body = [];
      for (i++; i < lines.length && !lines[i].startsWith(fence[1]); i++) body.push(lines[i]);
      i++;
      out.push(h("pre", { class: "text" }, body.join("\n")));
    } else if (/^#{1,6} /.test(line)) {
      const [, marks, text] = line.match(/^(#{1,6}) (.*)$/);
      out.push(h(`h${Math.min(marks.length + 2, 6)}`, {}, inline(text)));
      i++;
    } else if (/^\s*- /.test(line)) {
      const top = h("ul", {});
      const stack = [{ indent: 0, list: top }];
      for (; i < lines.length && /^\s*- /.test(lines[i]); i++) {
        const indent = lines[i].match(/^\s*/)[0].length;
        while (stack.length > 1 && indent < stack[stack.length - 1].indent) stack.pop();
        if (indent > stack[stack.length - 1].indent) {
          const parent = stack[stack.length - 1].list.lastElementChild;
          const sub = h("ul", {});
          if (parent) parent.append(sub);
          stack.push({ indent, list: parent ? sub : stack[stack.length - 1].list });
        }
        stack[stack.length - 1].list.append(h("li", {}, inline(lines[i].replace(/^\s*- /, ""))));
      }
      out.push(top);
    } else if (line.startsWith("|")) {
      const rows = [];
      for (; i < lines.length && lines[i].startsWith("|"); i++) {
        if (!/^\|[\s|:-]+\|\s*$/.test(lines[i])) rows.push(cells(lines[i]));
      }
      out.push(h("div", { class: "scroll" }, h("table", {}, rows.map((r, n) => h("tr", {}, r.map((c) => h(n === 0 ? "th" : "td", {}, inline(c))))))));
    } else if (!line.trim()) {
      i++;
    } else {
      const para = [];
      for (; i < lines.length && lines[i].trim() && !isBlock(lines[i]); i++) para.push(lines[i]);
      out.push(h("p", {}, inline(para.join(" "))));
    }
  }
  return out;
}

// A table row's cells: split at pipes a backslash does not escape.
function cells(row) {
  const out = [];
  let cell = "";
  const body = row.trim().replace(/^\|/, "").replace(/\|$/, "");
  for (let i = 0; i < body.length; i++) {
    if (body[i] === "\\" && i + 1 < body.length) { cell += body[i] + body[i + 1]; i++; }
    else if (body[i] === "|") { out.push(cell.trim()); cell = ""; }
    else cell += body[i];
  }
  out.push(cell.trim());
  return out;
}

// Inline Markdown as nodes: code spans, **bold**, backslash escapes, entities.
function inline(text) {
  const entities = { "&lt;": "<", "&gt;": ">", "&amp;": "&", "&quot;": "\"", "&#39;": "'" };
  const plain = (t) => t.replace(/\\([\\`*_\[\]|#<>&!-])/g, "$1").replace(/&(lt|gt|amp|quot|#39);/g, (e) => entities[e]);
  const nodes = [];
  let rest = text;
  while (rest) {
    const tick = rest.match(/(?<!\\)(`+)/);
    const bold = rest.match(/(?<!\\)\*\*(.+?)(?<!\\)\*\*/);
    if (tick && (!bold || tick.index <= bold.index)) {
      const close = rest.indexOf(tick[1], tick.index + tick[1].length);
      if (close < 0) { nodes.push(plain(rest)); break; }
      nodes.push(plain(rest.slice(0, tick.index)));
      const body = rest.slice(tick.index + tick[1].length, close);
      nodes.push(h("code", {}, (tick[1].length > 1 ? body.replace(/^ | $/g, "") : body).replace(/\\\|/g, "|")));
      rest = rest.slice(close + tick[1].length);
    } else if (bold) {
      nodes.push(plain(rest.slice(0, bold.index)));
      nodes.push(h("strong", {}, inline(bold[1])));
      rest = rest.slice(bold.index + bold[0].length);
    } else {
      nodes.push(plain(rest));
      break;
    }
  }
  return nodes.filter((n) => n !== "");
}

async function viewFiles() {
  title("Instructions & memory");
  const editors = await Promise.all(["instructions", "memory"].map(async (name) => {
    const f = await api("GET", `/api/files/${name}`);
    let base = f.sha256;
    const area = h("textarea", { id: `file-${name}`, rows: 12 });
    area.value = f.text;
    const save = h("button", { class: "primary", onclick: async () => {
      showError("");
      try { const r = await api("PUT", `/api/files/${name}`, { text: area.value, base_sha256: base }); base = r.sha256; save.textContent = "Saved"; setTimeout(() => (save.textContent = "Save"), 1500); }
      catch (e) { failed(e); }
    } }, "Save");
    return h("section", { class: "card" }, h("h2", {}, h("label", { for: `file-${name}` }, f.path)), area, h("p", {}, save));
  }));
  $main.replaceChildren(...editors);
}

async function viewSkills() {
  title("Skills");
  const r = await api("GET", "/api/skills");
  const card = (s) => {
    const parts = [h("h2", {}, s.name), h("p", { class: "muted" }, s.source === "yours" ? "your skill" : `${s.source} skill`),
      h("p", {}, s.description), h("pre", { class: "declarations" }, s.declarations.join("\n"))];
    if (s.untrusted) {
      const trust = h("button", { class: "primary", onclick: async () => {
        showError("");
        try { await api("POST", "/api/skills/trust", { name: s.name, fingerprint: s.fingerprint }); await viewSkills(); alertOk(`${s.name} is trusted in this workspace.`); }
        catch (e) { failed(e); }
      } }, `Trust ${s.name}`);
      parts.push(h("p", { class: "warn" }, `Not run: ${s.untrusted}. Read what it runs above; trust it only if you expected this skill in this folder.`), h("p", {}, trust));
    }
    return h("section", { class: s.untrusted ? "card untrusted" : "card", "aria-label": s.name }, ...parts);
  };
  const problems = r.problems.length ? [h("section", { class: "card" }, h("h2", {}, "Skipped"), h("ul", {}, r.problems.map((p) => h("li", {}, p))))] : [];
  $main.replaceChildren(...r.skills.map(card), ...problems);
}

async function viewSkillFrom(run) {
  title("Make a skill");
  $main.replaceChildren(h("section", { class: "card", role: "status" }, h("p", {}, "Drafting a skill from the run and replaying it on a scratch copy of its folders ...")));
  const d = await api("POST", `/api/runs/${encodeURIComponent(run)}/skill-draft`, {});
  const skillMd = h("textarea", { id: "skill-md", rows: 22, spellcheck: "false" });
  skillMd.value = d.skill_md;
  const evals = h("textarea", { id: "skill-evals", rows: 12, spellcheck: "false" });
  evals.value = d.evals_json;
  const rows = d.replay.files.map((f) => h("tr", {}, h("td", {}, f.path), h("td", {}, f.run), h("td", {}, f.replay || "not delivered")));
  const replay = h("section", { class: "card", "aria-label": "Replay" }, h("h2", {}, "Replay on a scratch copy"),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "File"), h("th", {}, "The run"), h("th", {}, "The replay"))), h("tbody", {}, ...rows)),
    h("p", { class: d.replay.matches ? "" : "warn" }, d.replay.matches
      ? (d.replay.differences
        ? `The replay delivered the same files, sheets, rows, formulas and pages as the run, but ${d.replay.differences} value(s) differ (below): read them before you install it.`
        : "The replay delivered the same files, sheets, rows, formulas and pages as the run, and the same values.")
      : `The replay does not match the run: ${d.replay.summary}`),
    ...d.replay.files.map((f) => h("div", { class: "replay-diff" },
      h("h3", {}, f.path),
      f.differences.length
        ? h("ul", {}, ...f.differences.map((l) => h("li", {}, l)), ...(f.more ? [h("li", { class: "muted" }, `... and ${f.more} more`)] : []))
        : h("p", { class: "muted" }, "The same values as the run."))));
  const result = h("div", {});
  const install = h("button", { class: "primary", onclick: async () => {
    showError("");
    install.disabled = true;
    try {
      const r = await api("POST", "/api/skills/install", { skill_md: skillMd.value, evals_json: evals.value });
      const passed = r.checks.filter((c) => c.passed).length;
      result.replaceChildren(h("section", { class: "card", role: "status", id: "installed" },
        h("h2", {}, `Installed ${r.installed}`),
        h("p", {}, `Read back from ${r.dir}. It passes ${passed} of ${r.checks.length} of its evals.`),
        h("ul", {}, r.checks.map((c) => h("li", {}, `${c.passed ? "ok" : "failed"}: ${c.prompt}${c.problem ? ` (${c.problem})` : ""}`))),
        h("p", {}, h("a", { href: "#/skills" }, "See it with your skills"))));
    } catch (e) { install.disabled = false; failed(e); }
  } }, `Install ${d.name}`);
  $main.replaceChildren(
    h("section", { class: "card" }, h("h2", {}, `Draft: ${d.name}`),
      d.words ? h("p", { class: "muted" }, d.words) : "",
      h("p", {}, "Edit the name, the description and the parameters (deskhand-param-...) in SKILL.md, and the checks in evals.json. Nothing is installed until you press Install."),
      h("label", { for: "skill-md" }, "SKILL.md"), skillMd,
      h("label", { for: "skill-evals" }, "evals/evals.json"), evals),
    replay,
    h("p", {}, install),
    result);
}

// ---------- Connectors ----------

// #/connectors: the person's and the workspace's connectors (MCP servers),
// each with its approved tools. Everything a server wrote (names,
// descriptions, definitions) goes in as text. "Test" starts a server in its
// sandbox and compares its tools with what was approved; a tool that changed
// waits, with its diff, for "Re-approve".
async function viewConnectors(added) {
  title("Connectors");
  const r = await api("GET", "/api/connectors");
  const intro = h("section", { class: "card" }, h("h2", {}, "Connectors"),
    h("p", {}, "Connectors are MCP servers that reach where your work lives (mail, calendars, chat, documents). Each local one runs in its own sandbox: no network, none of your keys but the variables listed for it, and only the folders of the step that uses it. The model is offered only the tools you approved and left enabled."));
  const cards = r.connectors.map(connectorCard);
  const problems = r.problems.length
    ? [h("section", { class: "card", id: "connector-problems" }, h("h2", {}, "Not read"), h("ul", {}, r.problems.map((p) => h("li", { class: "blocked" }, p))))]
    : [];
  $main.replaceChildren(intro, ...problems,
    h("section", { id: "connectors", "aria-label": "Your connectors" },
      cards.length ? cards : h("p", { class: "card muted" }, "No connectors yet. Add one below, or with `deskhand connectors add NAME -- COMMAND ARGS...`.")),
    addConnectorsForm(r));
  // Connectors just added: start each, so the person can pick the tools to approve.
  for (const a of added || []) {
    const card = $main.querySelector(`article.connector[data-scope="${a.scope}"][data-name="${CSS.escape(a.name)}"]`);
    if (card) card.querySelector("button.test").click();
  }
}

// What a connector runs: the command and its arguments, the names of the
// variables it gets (their values are never shown), or its URL.
function runsLine(t) {
  if (t.kind === "remote") return [h("p", {}, h("strong", {}, "Remote server: "), name(t.url)),
    t.headers.length ? h("p", {}, h("strong", {}, "Sends with every request: "), headersText(t.headers)) : null,
    t.pass_env.length ? h("p", { class: "warn" }, `Passes from deskhand's environment: ${t.pass_env.join(", ")}`) : null];
  const vars = [...t.env, ...t.pass_env.map((v) => `${v} (from deskhand's environment)`)];
  return [h("p", {}, h("strong", {}, "Runs: "), h("code", { class: "command" }, [t.command, ...t.args].join(" "))),
    vars.length ? h("p", { class: "muted" }, `Variables it gets (values not shown): ${vars.join(", ")}`) : null];
}

// A remote connector's headers: each name, its value with literals masked,
// and the variables of deskhand's environment filled in when it connects.
function headersText(headers) {
  return headers.map((x) => `${x.name}: ${x.value}` +
    (x.variables.length ? ` (${x.variables.join(", ")} from deskhand's environment)` : "")).join("; ");
}

// The variables a connector gets: its literal ones by name, and those from
// deskhand's environment marked so (their values go wherever it is sent).
function varsText(c) {
  const t = c.transport;
  const own = t.env.map((v) => `${v} (set in the list)`);
  const env = (c.from_env || []).map((v) => `${v} (from deskhand's environment)`);
  return [...own, ...env].join(", ") || "none";
}

// A tool's words: its name, what it does as the server says, and what deskhand makes of it.
function toolHead(t) {
  return [h("strong", {}, name(t.name)), t.title && t.title !== t.name ? " · " : null, t.title && t.title !== t.name ? name(t.title) : null,
    h("span", { class: "muted" }, ` (${t.annotations}${t.destructive ? ": each call asks you" : t.writes ? ": an action, asked as your mode says" : ""})`),
    t.description ? h("div", { class: "tool-description" }, t.description) : null,
    t.offered_as ? null : h("div", { class: "warn" }, "Not offered to the model: its name does not fit the model's 64 characters (letters, digits, _ and -).")];
}

function connectorCard(c) {
  const base = `/api/connectors/${c.scope}/${encodeURIComponent(c.name)}`;
  const act = async (btn, method, path, body, after) => {
    showError("");
    btn.disabled = true;
    try { await api(method, `${base}${path}`, body); await (after || (() => viewConnectors()))(); }
    catch (e) { btn.disabled = false; failed(e); }
  };
  const result = h("div", { class: "test-result", "aria-live": "polite" });
  const test = h("button", { class: "fit test", onclick: () => testConnector(c, base, test, result) }, "Test");
  const remove = h("button", { class: "danger fit", onclick: () => {
    if (confirm(`Remove the connector ${c.name} from ${c.listed}? Its approved tools and "always allow" answers are forgotten; added again, its tools are approved again.`)) act(remove, "DELETE", "", {});
  } }, "Remove");
  const rows = c.tools.map((t) => {
    const toggle = h("input", { type: "checkbox", class: "tool-enabled", checked: t.enabled, "aria-label": `Offer ${t.name} to the model`,
      onchange: () => act(toggle, "POST", "/enabled", { tool: t.name, enabled: toggle.checked }) });
    return h("tr", { "data-tool": t.name },
      h("td", {}, toolHead(t)),
      h("td", {}, h("label", { class: "inline" }, toggle, t.enabled ? " offered" : " disabled")),
      h("td", {}, t.destructive ? "asks you each time" : t.always_allowed ? "always allowed" : t.writes ? "asks as your mode says" : "runs within its step"));
  });
  const allowed = c.always_allowed.map((tool) => {
    const revoke = h("button", { class: "fit revoke", onclick: () => act(revoke, "POST", "/disallow", { tool }) }, `Revoke`);
    return h("li", { "data-tool": tool }, `${c.name}.${tool}: always allowed, its calls do not ask you. `, revoke);
  });
  const s = c.sign_in;
  // Signed in, it can still be refused (revoked at the service): "Sign in again" is always there.
  const signIn = s
    ? h("button", { class: "fit sign-in", onclick: () => signInConnector(c, base, signIn, result) }, s.signed_in ? "Sign in again" : "Sign in")
    : null;
  const signOut = s && s.signed_in ? h("button", { class: "fit sign-out", onclick: () => {
    if (confirm(`Sign out of ${c.name}? deskhand forgets its token; to use it again you sign in again. The service may still list deskhand among the applications you allowed: remove it there to revoke it everywhere.`)) act(signOut, "POST", "/sign-out", {}, async () => {
      await viewConnectors();
      alertOk(`Signed out of ${c.name}: deskhand forgot its token.`);
    });
  } }, "Sign out") : null;
  if (s && s.waiting_at) waitForSignIn(c);
  return h("article", { class: "card connector", "aria-label": `Connector ${c.name}`, "data-name": c.name, "data-scope": c.scope },
    h("h2", {}, name(c.name)),
    h("p", { class: "muted" }, `In ${c.listed} · ${c.access === "read-only" ? "read-only: every tool runs as a read" : "read-write: its writes are actions a step must declare"}${c.private ? " · its results are private: after reading one, the run reaches no new host without you" : ""}`),
    c.shadowed ? h("p", { class: "warn" }, "The workspace has a connector of the same name: runs here use that one.") : null,
    runsLine(c.transport),
    s ? signInLine(c) : null,
    c.definition_changed ? h("p", { class: "warn" }, "What it runs or may do changed in the list since you approved it: none of its tools is offered to the model. Test it and approve its tools again.") : null,
    c.approved ? null : h("p", { class: "warn" }, "No tool approved yet: nothing of it is offered to the model. Test it to see its tools and approve them."),
    rows.length ? h("table", { class: "tools" },
      h("thead", {}, h("tr", {}, h("th", {}, "Approved tool"), h("th", {}, "Offered"), h("th", {}, "Its calls"))),
      h("tbody", {}, rows)) : null,
    allowed.length ? h("ul", { class: "allowed", "aria-label": "Always allowed" }, allowed) : null,
    h("div", { class: "row" }, test, signIn, signOut, remove),
    result);
}

// Whether a remote connector is signed in (to which server, until when), a
// sign-in waiting for the person, and why the last one failed. The page
// never holds the token.
function signInLine(c) {
  const s = c.sign_in;
  const words = s.words.charAt(0).toUpperCase() + s.words.slice(1);
  return h("div", { class: "sign-in-state" },
    h("p", { class: s.signed_in ? (s.again ? "warn" : "signed-in") : "muted" }, h("strong", {}, "Sign-in: "), `${words}.`,
      s.signed_in ? null : " Sign in if the server asks for it (Test tells you)."),
    s.waiting_at ? h("p", { role: "status", class: "waiting" }, `Waiting for you to sign in at ${s.waiting_at}… Finish in the tab that opened; this page updates when you are back.`) : null,
    c.sign_in_error ? h("p", { class: "blocked" }, `The last sign-in did not finish: ${c.sign_in_error}`) : null);
}

// An address the page opens for a sign-in: web addresses only.
function webAddress(u) {
  try { return ["https:", "http:"].includes(new URL(u).protocol) ? u : null; } catch (_) { return null; }
}

// "Sign in": the server finds where the person signs in and waits for their
// browser to come back to deskhand; the page opens that address in a new tab
// (no link back to this page) and watches the list until the sign-in ends.
async function signInConnector(c, base, btn, into) {
  showError("");
  btn.disabled = true;
  into.replaceChildren(h("p", { class: "muted", role: "status" }, `Asking ${c.name} where to sign in …`));
  let r;
  try { r = await api("POST", `${base}/sign-in`, {}); }
  catch (e) { into.replaceChildren(); btn.disabled = false; return failed(e); }
  const target = webAddress(r.authorize_url);
  if (!target) { into.replaceChildren(); btn.disabled = false; return showError(`${c.name}'s sign-in address is not a web address; deskhand does not open it.`); }
  window.open(target, "_blank", "noopener,noreferrer");
  btn.disabled = false;
  into.replaceChildren(h("p", { role: "status", class: "waiting" }, `Waiting for you to sign in at ${r.issuer}… `,
    "A new tab opened there; if it did not, ",
    h("a", { href: target, target: "_blank", rel: "noopener noreferrer" }, "open the sign-in page"), "."));
  waitForSignIn(c);
}

// Sign-ins this page is watching, by connector; each ends by showing the
// list again (a signed-in connector is tested, to list its tools).
const signInWatches = new Set();
async function waitForSignIn(c) {
  const id = `${c.scope}/${c.name}`;
  if (signInWatches.has(id)) return;
  signInWatches.add(id);
  try {
    for (;;) {
      await new Promise((ok) => setTimeout(ok, 1000));
      if (!location.hash.startsWith("#/connectors") || !session) return;
      let now;
      try { now = (await api("GET", "/api/connectors")).connectors.find((x) => x.scope === c.scope && x.name === c.name); }
      catch (e) { return failed(e); }
      if (!now || !now.sign_in) return viewConnectors();
      if (now.sign_in.waiting_at) continue;
      if (now.sign_in.signed_in && !now.sign_in_error) {
        await viewConnectors([{ name: c.name, scope: c.scope }]);
        alertOk(`Signed in to ${c.name}.`);
      } else await viewConnectors();
      return;
    }
  } finally { signInWatches.delete(id); }
}

// A definition's diff (`- approved`, `+ now`), each line marked.
function diffView(text) {
  return h("pre", { class: "diff" }, text.split("\n").map((l) =>
    h("div", { class: l.startsWith("+ ") ? "add" : l.startsWith("- ") ? "del" : "" }, l || " ")));
}

async function testConnector(c, base, btn, into) {
  showError("");
  btn.disabled = true;
  into.replaceChildren(h("p", { class: "muted", role: "status" }, `Starting ${c.name} in its sandbox …`));
  let r;
  try { r = await api("POST", `${base}/test`, {}); }
  catch (e) { into.replaceChildren(); btn.disabled = false; return failed(e); }
  btn.disabled = false;
  if (!r.started && r.needs_sign_in) {
    const go = h("button", { class: "primary fit", onclick: () => signInConnector(c, base, go, into) }, `Sign in to ${c.name}`);
    return into.replaceChildren(h("p", { role: "status" }, r.problem),
      h("p", { class: "muted" }, "You sign in on the service's own page, in a new tab; deskhand keeps the token, readable only by you, and sends it only to this server. Then its tools are listed here for you to approve."),
      go);
  }
  if (!r.started) return into.replaceChildren(h("p", { class: "blocked", role: "status" }, r.problem));
  const approve = async (b, tools) => {
    showError("");
    b.disabled = true;
    try {
      const a = await api("POST", `${base}/approve`, { tools: tools.map((t) => ({ name: t.name, hash: t.hash })) });
      await viewConnectors();
      alertOk(`Approved ${a.approved.join(", ")} of ${c.name}.`);
    } catch (e) { b.disabled = false; failed(e); }
  };
  const fresh = r.tools.filter((t) => t.change === "not approved yet");
  const quarantined = r.tools.filter((t) => t.change && t.change !== "not approved yet");
  const pinned = r.tools.filter((t) => t.pinned);
  const parts = [h("p", { role: "status" }, `${c.name} started and lists ${r.tools.length} tool(s)${r.protocol ? ` (MCP ${r.protocol})` : ""}.`)];
  if (fresh.length) {
    const boxes = fresh.map((t) => h("li", { "data-tool": t.name }, h("label", { class: "inline" },
      h("input", { type: "checkbox", class: "approve-tool", checked: true, value: t.name }), " ", toolHead(t))));
    const go = h("button", { class: "primary fit", onclick: () => {
      const chosen = fresh.filter((t, i) => boxes[i].querySelector("input").checked);
      if (!chosen.length) return showError("Choose at least one tool to approve.");
      approve(go, chosen);
    } }, "Approve the chosen tools");
    parts.push(h("h3", {}, "Not approved yet"),
      h("p", { class: "muted" }, "Approving a tool keeps its definition as you see it now; if the server changes it later, it is held back until you approve it again."),
      h("ul", { class: "approve-list" }, boxes), go);
  }
  for (const t of quarantined) {
    const again = h("button", { class: "primary fit reapprove", onclick: () => approve(again, [t]) }, `${t.change === "added since approval" ? "Approve" : "Re-approve"} ${t.name}`);
    parts.push(h("section", { class: "quarantined", "data-tool": t.name, "aria-label": `Quarantined ${t.name}` },
      h("h3", {}, "Held back: ", name(t.name), ` (${t.change})`),
      h("p", {}, "Not offered to the model, its calls refused, until you read what changed and approve it again."),
      t.diff ? diffView(t.diff) : null, again));
  }
  if (pinned.length) parts.push(h("p", { class: "muted" }, `As approved: ${pinned.map((t) => t.name).join(", ")}.`));
  if (r.gone.length) parts.push(h("p", { class: "warn" }, `Approved but no longer listed by the server: ${r.gone.join(", ")}.`));
  into.replaceChildren(...parts);
}

// Adding: paste what other MCP clients use; the page shows what each entry
// would run, and nothing is saved before the person confirms exactly that.
function addConnectorsForm(r) {
  const text = h("textarea", { id: "connectors-json", rows: 8, spellcheck: "false",
    placeholder: '{"mcpServers": {"files": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home/me/Documents"]}}}' });
  const scope = h("select", { id: "connectors-scope" },
    h("option", { value: "workspace" }, "This workspace only"),
    h("option", { value: "user", disabled: !r.user_list }, "Yours, in every workspace"));
  const access = h("select", { id: "connectors-access" },
    h("option", { value: "read-write" }, "Read and write: each write is an action a step declares, asked as your mode says"),
    h("option", { value: "read-only" }, "Read only: every tool runs as a read"));
  const shown = h("div", { id: "connectors-preview", "aria-live": "polite" });
  const look = h("button", { type: "submit", class: "primary" }, "Show what it would run");
  const body = () => ({ text: text.value, scope: scope.value, access: access.value });
  const stale = () => { if (shown.firstChild) shown.replaceChildren(h("p", { class: "muted" }, "Changed: show it again to see what would be added.")); };
  return h("form", { class: "card", id: "add-connectors", oninput: stale, onchange: stale, onsubmit: async (ev) => {
    ev.preventDefault();
    showError("");
    look.disabled = true;
    try {
      const sent = body();
      const p = await api("POST", "/api/connectors/preview", sent);
      shown.replaceChildren(pastePreview(p, sent));
    } catch (e) { shown.replaceChildren(); failed(e); }
    look.disabled = false;
  } },
    h("h2", {}, "Add connectors"),
    h("label", { for: "connectors-json" }, "Paste an mcpServers JSON (what other MCP clients use)"), text,
    h("label", { for: "connectors-scope" }, "Where to list them"), scope,
    h("label", { for: "connectors-access" }, "What they may do"), access,
    h("p", {}, look),
    shown);
}

function pastePreview(p, sent) {
  const add = h("button", { type: "button", class: "primary", id: "connectors-add", onclick: async () => {
    showError("");
    add.disabled = true;
    try {
      const r = await api("POST", "/api/connectors", { ...sent, hash: p.hash });
      await viewConnectors(r.added.map((n) => ({ name: n, scope: r.scope })));
      alertOk(`Added ${r.added.join(", ")}. ${r.added.length === 1 ? "Its" : "Their"} tools are offered to the model only once you approve them below.`);
    } catch (e) { add.disabled = false; failed(e); }
  } }, `Add ${p.connectors.length === 1 ? "this connector" : `these ${p.connectors.length} connectors`}`);
  return h("section", { class: "card approval", "aria-label": "What would be added" },
    h("h3", {}, "Before you add"),
    h("p", {}, `To ${p.listed} (${p.file}):`),
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Runs"), h("th", {}, "Variables (names only)"), h("th", {}, "May"))),
      h("tbody", {}, p.connectors.map((c) => h("tr", {},
        h("td", {}, name(c.name)),
        h("td", {}, c.transport.kind === "remote"
          ? [`remote: ${c.transport.url}`, c.transport.headers.length ? h("div", {}, `headers: ${headersText(c.transport.headers)}`) : null]
          : h("code", {}, [c.transport.command, ...c.transport.args].join(" "))),
        h("td", {}, varsText(c)),
        h("td", {}, c.access + (c.private ? ", private" : "")))))),
    h("p", { class: "muted" }, "Nothing runs yet. Once added, each is started in its sandbox to list its tools, and you choose which to approve."),
    p.connectors.some((c) => c.transport.kind === "remote" && !c.transport.headers.some((x) => x.name.toLowerCase() === "authorization"))
      ? h("p", { class: "muted" }, "A remote server that asks you to sign in offers a Sign in button on its card once added; you sign in on the service's own page.") : null,
    h("p", {}, add));
}

// ---------- Schedules ----------

// The browser's zone: times are shown in it, and a new schedule's times are
// read in it unless the person names another.
const HERE = (Intl.DateTimeFormat().resolvedOptions().timeZone) || "";

// A moment as the server says it: in the schedule's zone, and in the
// browser's where that differs.
function when(t) {
  return t.here ? `${t.here} (${t.there} there)` : t.there;
}

// #/schedules lists this workspace's schedules; #/schedules/new opens the
// form, and ?from=RUN fills it with a finished run's task, grants and mode.
async function viewSchedules(arg) {
  title("Schedules");
  const [what, query] = arg.split("?");
  const from = new URLSearchParams(query || "").get("from");
  const [state, list, run] = await Promise.all([
    api("GET", "/api/state"),
    api("GET", `/api/schedules?here=${encodeURIComponent(HERE)}`),
    from ? api("GET", `/api/runs/${encodeURIComponent(from)}/view`) : null,
  ]);
  document.getElementById("workspace").textContent = `Workspace: ${state.workspace}`;
  const task = run && run.view.task;
  const form = scheduleForm(state, list.phrases, task, from);
  const shown = what === "new" || list.schedules.length === 0;
  const open = h("button", { class: "primary", onclick: () => { location.hash = "#/schedules/new"; } }, "New schedule");
  $main.replaceChildren(
    shown ? form : h("p", {}, open),
    h("section", { class: "card", id: "schedules" }, h("h2", {}, "Schedules of this workspace"),
      list.schedules.length === 0
        ? h("p", { class: "muted" }, "None yet. A schedule runs a task on its own at the times you set, even with deskhand closed (once `deskhand schedule install` has set up the OS job; while this server runs, it runs them too).")
        : list.schedules.map(scheduleCard)));
  if (shown) form.querySelector(task ? "#sched-every" : "#sched-task").focus();
}

function scheduleCard(s) {
  const act = (path, method = "POST") => async (ev) => {
    showError("");
    ev.target.disabled = true;
    try {
      const r = await api(method, `/api/schedules/${s.id}${path}`, {});
      if (r && r.run) { location.hash = `#/run/${encodeURIComponent(r.run)}`; return; }
      await route();
    } catch (e) { ev.target.disabled = false; failed(e); }
  };
  const remove = (ev) => {
    if (confirm(`Remove the schedule "${s.task}"? Its past runs stay in History.`)) act("", "DELETE")(ev);
  };
  const next = s.paused ? "Paused: it does not run until you resume it."
    : s.next ? `Next run: ${when(s.next)}` : `It cannot run: ${s.problem}`;
  return h("article", { class: s.paused ? "schedule paused" : "schedule", "aria-label": `Schedule ${s.id}`, "data-id": s.id },
    h("h3", {}, name(s.task)),
    h("p", {}, s.when),
    h("p", { class: "next" }, next),
    s.recent.length ? h("div", {}, h("p", { class: "muted" }, "Last runs:"), h("ul", { class: "recent" }, s.recent.map(occurrenceItem))) : null,
    h("details", {}, h("summary", {}, "What its runs may do"),
      h("p", {}, `Grants: ${s.grants}. Mode: ${s.mode}. If missed: ${s.missed}.`),
      s.envelope ? h("pre", { class: "declarations" }, s.envelope) : h("p", { class: "muted" }, "No approved plan: its runs stop at anything that would ask you.")),
    h("div", { class: "row" },
      s.paused ? h("button", { class: "fit", onclick: act("/resume") }, "Resume")
        : h("button", { class: "fit", onclick: act("/pause") }, "Pause"),
      h("button", { class: "fit", onclick: act("/run-now") }, "Run now"),
      h("button", { class: "danger fit", onclick: remove }, "Remove")));
}

// One of a schedule's due times and what became of it, its run linked. A
// run that stopped for the person and went on with them since says how it ended.
function occurrenceItem(o) {
  const since = o.state === "needs_you" && o.run_now && o.run_now !== "needs_input" ? o.run_now : null;
  return h("li", { class: since ? "" : `o-${o.state}` },
    `${when(o.due)}: ${o.said}`,
    since ? `, then went on with you: ${runLabel(since)}` : "",
    o.covers > 1 ? ` (for ${o.covers} due times)` : "",
    o.run ? [" · ", h("a", { href: `#/run/${encodeURIComponent(o.run)}` }, "the run")] : null,
    o.note ? h("div", { class: "muted" }, pageWords(o.note, o.run)) : null);
}

// A note written for the terminal ("`deskhand resume RUN` goes on ...") in the
// page's words: the run's page goes on with it.
function pageWords(note, run) {
  const cut = note.indexOf("`deskhand resume");
  if (cut < 0 || !run) return note;
  return `${note.slice(0, cut).trim()} Open the run to go on with it from there.`;
}

// The form: the task, when, the zone, grants and mode as the new-task form
// has them, the missed-run policy. Preview shows the next five times and
// what the runs may do; Save saves exactly that (a changed plan is shown again).
function scheduleForm(state, phrases, task, from) {
  const { grants, datalist, addGrant, grantsOf } = grantRows(state.folders);
  if (task) task.grants.forEach((g) => addGrant(g.path, g.access === "read_write"));
  else addGrant("projects");
  const outcome = h("textarea", { id: "sched-task", rows: 2, placeholder: "Make my briefing from the notes in context/" });
  outcome.value = task ? task.outcome : "";
  const every = h("input", { type: "text", id: "sched-every", placeholder: "every weekday at 8:00, or cron: 0 8 * * 1-5", autocomplete: "off" });
  const zone = h("input", { type: "text", id: "sched-zone", value: HERE, placeholder: "Europe/Berlin", autocomplete: "off" });
  const mode = h("select", { id: "sched-mode" },
    h("option", { value: "act" }, "Act without asking (deletions still stop for you)"),
    h("option", { value: "ask" }, "Ask before each step (runs stop where a step is not in the approved plan)"));
  mode.value = task ? task.mode : "act";
  const missed = h("select", { id: "sched-missed" },
    h("option", { value: "skip" }, "Skip it (the next time runs)"),
    h("option", { value: "once" }, "Run once when deskhand wakes, all missed times together"),
    h("option", { value: "notify" }, "Tell me, run nothing"));
  const preview = h("div", { id: "sched-preview", "aria-live": "polite" });
  const look = h("button", { type: "submit", class: "primary" }, "Preview");
  const body = () => ({ task: outcome.value, every: every.value, zone: zone.value, here: HERE,
    grants: grantsOf(), mode: mode.value, missed: missed.value });
  const show = async (keepError) => {
    if (!keepError) showError("");
    look.disabled = true;
    preview.replaceChildren(h("p", { class: "muted", role: "status" }, "Planning its runs, without doing anything …"));
    try {
      const p = await api("POST", "/api/schedules/preview", body());
      preview.replaceChildren(previewCard(p, body, () => show(true)));
    } catch (e) { preview.replaceChildren(); failed(e); }
    look.disabled = false;
  };
  // What was previewed no longer stands once the form changes.
  const stale = () => { if (preview.firstChild) preview.replaceChildren(h("p", { class: "muted" }, "Changed: preview again to see what would be saved.")); };
  const form = h("form", { class: "card", id: "schedule-form", oninput: stale, onchange: stale, onsubmit: (ev) => { ev.preventDefault(); show(); } },
    h("h2", {}, "New schedule"),
    from ? h("p", { class: "muted" }, "Filled from ", h("a", { href: `#/run/${encodeURIComponent(from)}` }, `run ${from}`),
      ". Say when it runs, then Preview: nothing is saved before you see its times and what its runs may do.") : null,
    h("label", { for: "sched-task" }, "The task, in words"), outcome,
    h("label", { for: "sched-every" }, "Every …"), every,
    h("details", { class: "muted" }, h("summary", {}, "Phrases deskhand knows"), h("p", {}, phrases)),
    h("label", { for: "sched-zone" }, "Time zone of those times"), zone,
    h("label", {}, "Folders its runs may see"), grants, datalist,
    h("button", { type: "button", onclick: () => addGrant() }, "Add a folder"),
    h("label", { for: "sched-mode" }, "Permission mode"), mode,
    h("label", { for: "sched-missed" }, "If deskhand could not run it at its time (the computer was off)"), missed,
    h("p", {}, look),
    preview);
  return form;
}

function previewCard(p, body, again) {
  const save = h("button", { type: "button", class: "primary", id: "sched-save", onclick: async () => {
    showError("");
    save.disabled = true;
    try {
      const r = await api("POST", "/api/schedules", { ...body(), hash: p.hash });
      history.pushState(null, "", "#/schedules");
      await viewSchedules("");
      alertOk(`Saved schedule ${r.id}: ${p.task}`);
    } catch (e) {
      save.disabled = false;
      failed(e);
      // The plan changed since it was shown: show what would be saved now, the reason kept above it.
      if (/changed since you saw it/.test(e.message)) again();
    }
  } }, "Save this schedule");
  return h("section", { class: "card approval", id: "sched-shown", "aria-label": "What would be saved" },
    h("h3", {}, "Before you save"),
    h("p", {}, h("strong", {}, "When: "), p.when),
    h("p", {}, h("strong", {}, "Next runs:")),
    h("ol", { class: "times" }, p.next.map((t) => h("li", {}, when(t)))),
    h("p", {}, h("strong", {}, "Workspace: "), p.workspace),
    h("p", {}, h("strong", {}, "Grants: "), p.grants),
    h("p", {}, h("strong", {}, "Mode: "), p.mode),
    h("p", {}, h("strong", {}, "If missed: "), p.missed),
    p.envelope ? h("pre", { class: "declarations" }, p.envelope) : null,
    h("p", {}, save));
}

async function route() {
  showError("");
  if (live) { live.close(); live = null; }
  if (!session) return sessionLost("");
  const [, view, arg] = location.hash.split("/");
  try {
    if (view === "run" && arg) await viewRun(decodeURIComponent(arg));
    else if (view === "history") await viewHistory();
    else if (view === "ledger" && arg) await viewLedger(decodeURIComponent(arg));
    else if (view === "files") await viewFiles();
    else if (view === "skills") await viewSkills();
    else if (view === "skill-from" && arg) await viewSkillFrom(decodeURIComponent(arg));
    else if (view === "schedules") await viewSchedules(arg || "");
    else if (view === "connectors") await viewConnectors();
    else await viewNew();
  } catch (e) {
    failed(e);
  }
  $main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", route);
startSession().then(route, (e) => sessionLost(e.message));
