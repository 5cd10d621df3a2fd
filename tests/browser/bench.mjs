// The plan UI's latency and footprint (BENCHMARKS.md; nothing here asserts):
// - step event -> DOM: the time from a step's journal entry (its `at`) to the
//   page showing the new status, over several runs in real Chromium;
// - the server's resident memory at idle and with 50 SSE clients on one run,
//   and how fast those 50 clients see a new event.
// Run: `node tests/browser/bench.mjs` after `cargo build --release` (DESKHAND_BIN
// defaults to target/release/deskhand).

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import { chromium } from "playwright-core";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.DESKHAND_BIN || join(repo, "target/release/deskhand");
const ws = join(mkdtempSync(join(tmpdir(), "deskhand-bench-")), "ws");
execFileSync(bin, ["init", ws]);
mkdirSync(join(ws, "projects/notes"), { recursive: true });
for (let i = 0; i < 20; i++) writeFileSync(join(ws, `projects/notes/n${i}.txt`), `note ${i}\n`);
const server = spawn(bin, ["serve", "--workspace", ws, "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
const url = await new Promise((ok) => {
  let out = "";
  server.stdout.on("data", (d) => { out += d; const m = out.match(/http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]+/); if (m) ok(m[0]); });
});
const origin = new URL(url).origin;
const rss = () => Number(readFileSync(`/proc/${server.pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/)[1]) / 1024;
const pct = (v, p) => { const s = [...v].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };

await new Promise((r) => setTimeout(r, 1500));
const idle = rss();

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"] });
const page = await (await browser.newContext()).newPage();
await page.goto(url);
await page.waitForSelector("#outcome");
const latencies = [];
const step = (what) => process.stderr.write(`bench: ${what}\n`);
setTimeout(() => { step("gave up after 5 minutes"); server.kill(); process.exit(1); }, 300000).unref();
for (let round = 0; round < 15; round++) {
  step(`run ${round + 1} of 15`);
  await page.goto(`${origin}/#/`);
  await page.waitForSelector("#outcome");
  await page.fill("#outcome", "Make an inventory of the notes folder");
  await page.fill(".grant-path", "projects/notes");
  await page.selectOption("#mode", "act");
  await page.evaluate(() => {
    window.__seen = [];
    new MutationObserver(() => {
      for (const li of document.querySelectorAll("ol.plan > li[data-step]")) {
        const key = `${li.dataset.step}:${li.dataset.status}`;
        if (!window.__seen.some((s) => s.key === key)) window.__seen.push({ key, t: Date.now() });
      }
    }).observe(document.getElementById("main"), { subtree: true, childList: true, attributes: true });
  });
  await page.click("button[type=submit]");
  await page.locator('ol.plan > li[data-step="2"][data-status="done"]').waitFor();
  const run = decodeURIComponent(page.url().split("#/run/")[1]);
  const seen = await page.evaluate(() => window.__seen);
  const events = execFileSync(bin, ["show", run, "--workspace", ws, "--events"], { encoding: "utf8" })
    .split("\n").filter(Boolean).map((l) => JSON.parse(l));
  for (const e of events) {
    const ev = e.event;
    const key = ev.type === "step_end" ? `${ev.step}:${ev.status}` : ev.type === "step_begin" ? `${ev.step}:in_progress` : null;
    const dom = key && seen.find((s) => s.key === key);
    if (dom) latencies.push(dom.t - Date.parse(e.at));
  }
}
await browser.close();

step("50 SSE clients");
// 50 SSE clients on one finished run: each connects, replays the journal;
// then the time until all 50 have a newly appended event.
const cookie = await new Promise((ok) => http.get(url, (res) => { ok(res.headers["set-cookie"][0].split(";")[0]); res.resume(); }));
const runs = JSON.parse(await new Promise((ok) => http.get(`${origin}/api/runs`, { headers: { Cookie: cookie } }, (res) => { let d = ""; res.on("data", (c) => (d += c)); res.on("end", () => ok(d)); })));
const run = runs[0].id;
const clients = [];
let marker = null;
const arrivals = [];
for (let i = 0; i < 50; i++) {
  clients.push(new Promise((ok) => {
    const req = http.get(`${origin}/api/runs/${run}/events`, { headers: { Cookie: cookie, Accept: "text/event-stream" } }, (res) => {
      res.setEncoding("utf8");
      res.on("data", (chunk) => { if (marker && chunk.includes(marker)) { arrivals.push(Date.now()); req.destroy(); ok(); } });
    });
    req.on("error", () => ok());
  }));
}
await new Promise((r) => setTimeout(r, 1500));
const withClients = rss();
marker = `bench-marker-${Date.now()}`;
const sent = Date.now();
execFileSync("sqlite3", [join(ws, ".deskhand/journal.db"),
  `INSERT INTO events (task_id, at, kind, body) VALUES ('${run}', '${new Date().toISOString()}', 'notice', '{"type":"notice","message":"${marker}"}')`]);
await Promise.race([Promise.all(clients), new Promise((r) => setTimeout(r, 10000))]);
server.kill();

console.log(`step event -> DOM update in Chromium, ${latencies.length} samples over 15 runs: p50 ${pct(latencies, 0.5)} ms, p90 ${pct(latencies, 0.9)} ms, max ${Math.max(...latencies)} ms`);
console.log(`server RSS: ${idle.toFixed(1)} MiB idle, ${withClients.toFixed(1)} MiB with 50 SSE clients`);
console.log(`50 SSE clients: ${arrivals.length} got a new event; slowest after ${Math.max(...arrivals) - sent} ms, median ${pct(arrivals.map((a) => a - sent), 0.5)} ms`);
