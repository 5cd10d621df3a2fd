// The plan UI in real Chromium: submit a task, watch the plan, approve its
// steps (a reload in between shows the same state), download and preview
// the deliverable, undo a run's renames, and the server's refusals.
// Run by scripts/test after the cargo tests: `npm test --prefix tests/browser`.
// DESKHAND_BIN names the binary (default: target/debug/deskhand);
// screenshots go to target/ui-screenshots/.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, writeFileSync, readFileSync, readdirSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import { chromium } from "playwright-core";

const repo = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const bin = process.env.DESKHAND_BIN || join(repo, "target/debug/deskhand");
const shots = join(repo, "target/ui-screenshots");
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";

let ws, server, url, origin, browser;

function deskhand(args) {
  return execFileSync(bin, args, { encoding: "utf8", env: { ...process.env, XDG_CONFIG_HOME: join(ws, ".cfg") } });
}

before(async () => {
  assert.ok(existsSync(bin), `${bin} is missing: build deskhand first (cargo build)`);
  assert.ok(existsSync(chromiumPath), `${chromiumPath} is missing: run scripts/setup (it installs Debian's chromium)`);
  mkdirSync(shots, { recursive: true });
  ws = join(mkdtempSync(join(tmpdir(), "deskhand-ui-")), "ws");
  deskhand(["init", ws]);
  mkdirSync(join(ws, "projects/notes"), { recursive: true });
  writeFileSync(join(ws, "projects/notes/summary.txt"), "quarterly summary\n");
  writeFileSync(join(ws, "projects/notes/budget.csv"), "item,amount\nvenue,1200\n");
  mkdirSync(join(ws, "projects/scans"), { recursive: true });
  writeFileSync(join(ws, "projects/scans/scan 14.03.2026.pdf"), "%PDF scan");
  writeFileSync(join(ws, "projects/scans/invoice_2026_02_01.txt"), "invoice");
  // A two-page report PDF among the deliverables, written by the pdf tool.
  deskhand(["tool", "run", "pdf", "report", "--workspace", ws, "--args", JSON.stringify({
    path: "output/report.pdf", title: "Quarterly report",
    blocks: [{ type: "paragraph", text: "The first page." }, { type: "page_break" },
      { type: "paragraph", text: "The second page: Café, 中文." }],
  })]);
  server = spawn(bin, ["serve", "--workspace", ws, "--port", "0"], {
    env: { ...process.env, XDG_CONFIG_HOME: join(ws, ".cfg") },
    stdio: ["ignore", "pipe", "inherit"],
  });
  url = await new Promise((ok, fail) => {
    let out = "";
    server.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/http:\/\/127\.0\.0\.1:\d+\/\?token=[0-9a-f]+/);
      if (m) ok(m[0]);
    });
    server.on("exit", (code) => fail(new Error(`deskhand serve exited (${code}): ${out}`)));
    setTimeout(() => fail(new Error(`deskhand serve printed no URL: ${out}`)), 60000);
  });
  origin = new URL(url).origin;
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run"],
  });
});

after(async () => {
  if (browser) await browser.close();
  if (server) server.kill();
});

/// A raw request, so the Host and Origin headers are exactly what the test says.
function raw(method, path, headers = {}, body) {
  const u = new URL(origin);
  return new Promise((ok, fail) => {
    const req = http.request({ host: "127.0.0.1", port: u.port, method, path, headers, setHost: false }, (res) => {
      let data = "";
      res.on("data", (d) => (data += d));
      res.on("end", () => ok({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on("error", fail);
    if (body) req.write(body);
    req.end();
  });
}

async function newPage() {
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1000, height: 800 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector("#outcome");
  return page;
}

test("a task runs with its plan shown live, each step approved, the deliverable downloaded and previewed", async () => {
  const page = await newPage();
  assert.equal(new URL(page.url()).search, "", "the token is gone from the address bar");
  await page.screenshot({ path: join(shots, "new-task.png"), fullPage: true });

  await page.fill("#outcome", "Make an inventory of the notes folder");
  await page.fill(".grant-path", "projects/notes");
  await page.selectOption("#mode", "ask");
  await page.click("button[type=submit]");
  await page.waitForURL(/#\/run\//);
  const run = decodeURIComponent(page.url().split("#/run/")[1]);

  // Step 1 waits for the person: its card shows what it reads and writes.
  const card = page.locator("section.approval");
  await card.waitFor();
  assert.match(await card.innerText(), /reads: projects\/notes/);
  await page.screenshot({ path: join(shots, "approval.png"), fullPage: true });
  // Keyboard: the approve button is reachable and works with Enter.
  await card.locator("button.primary").focus();
  await page.keyboard.press("Enter");
  await page.locator('ol.plan > li[data-step="1"][data-status="done"]').waitFor();

  // Reload mid-run: the plan and the pending approval come back from the journal.
  await card.waitFor();
  await page.reload();
  await page.locator('ol.plan > li[data-step="1"][data-status="done"]').waitFor();
  await page.locator("section.approval").waitFor();
  await page.screenshot({ path: join(shots, "plan-after-reload.png"), fullPage: true });
  await page.locator("section.approval button.primary").click();
  await page.locator('ol.plan > li[data-step="2"][data-status="done"]').waitFor();
  await page.getByText("Deliverables in output/").waitFor();
  await page.screenshot({ path: join(shots, "deliverables.png"), fullPage: true });

  // Download the inventory and check it is the file on disk.
  const files = page.locator("section", { has: page.getByRole("heading", { name: "Deliverables in output/" }) });
  const item = files.locator("li", { hasText: /inventory.*\.csv/ }).first();
  const [download] = await Promise.all([page.waitForEvent("download"), item.getByRole("link", { name: "Download" }).click()]);
  const saved = join(shots, "downloaded-inventory.csv");
  await download.saveAs(saved);
  const name = readdirSync(join(ws, "output")).find((f) => f.startsWith("inventory") && f.endsWith(".csv"));
  assert.deepEqual(readFileSync(saved), readFileSync(join(ws, "output", name)));
  await item.getByRole("button", { name: "Preview" }).click();
  await page.locator("#preview table").waitFor();
  assert.match(await page.locator("#preview table").innerText(), /summary\.txt/);

  // A PDF previews page by page: its text, and the page in the browser's viewer,
  // which only this origin may frame.
  await files.locator("li", { hasText: "report.pdf" }).getByRole("button", { name: "Preview" }).click();
  await page.getByText("Page 1 of 2", { exact: true }).waitFor();
  assert.match(await page.locator("#preview .pdf-text").innerText(), /The first page\./);
  await page.getByRole("button", { name: "Next page" }).click();
  await page.getByText("Page 2 of 2", { exact: true }).waitFor();
  assert.match(await page.locator("#preview .pdf-text").innerText(), /The second page: Café, 中文\./);
  assert.equal(await page.locator("#preview iframe").getAttribute("src"), "/view/output/report.pdf#page=2");
  await page.screenshot({ path: join(shots, "pdf-preview.png"), fullPage: true });
  const view = await page.request.get(`${origin}/view/output/report.pdf`);
  assert.equal(view.status(), 200);
  assert.equal(view.headers()["content-type"], "application/pdf");
  assert.equal(view.headers()["x-frame-options"], "SAMEORIGIN");
  assert.match(view.headers()["content-security-policy"], /frame-ancestors 'self'/);
  assert.equal((await page.request.get(`${origin}/view/output/${encodeURIComponent(name)}`)).status(), 400, "only PDFs are framed");

  // The ledger is there, and the history lists the run.
  await page.goto(`${origin}/#/history`);
  await page.getByText("Make an inventory of the notes folder").waitFor();
  await page.screenshot({ path: join(shots, "history.png"), fullPage: true });
  assert.ok(run.startsWith("run-"));
});

test("a run's renames are undone from the page", async () => {
  const page = await newPage();
  await page.fill("#outcome", '/rename-by-date folder="projects/scans"');
  await page.fill(".grant-path", "projects/scans");
  await page.check(".grant-write");
  await page.selectOption("#mode", "act");
  await page.click("button[type=submit]");
  await page.waitForURL(/#\/run\//);
  await page.getByRole("button", { name: "Undo this run's changes" }).waitFor({ timeout: 60000 });
  assert.ok(readdirSync(join(ws, "projects/scans")).includes("2026-03-14 scan.pdf"));
  await page.getByRole("button", { name: "Undo this run's changes" }).click();
  // The page says so (the activity log shows the journal's Undone event too).
  await page.getByRole("status").filter({ hasText: /Undone: 2 change/ }).waitFor();
  assert.deepEqual(readdirSync(join(ws, "projects/scans")).sort(), ["invoice_2026_02_01.txt", "scan 14.03.2026.pdf"]);
});

test("the instruction file is edited and saved, and a stale save is refused in words", async () => {
  const page = await newPage();
  await page.goto(`${origin}/#/files`);
  const area = page.locator("#file-instructions");
  await area.waitFor();
  await area.fill("# Instructions\n\n- Amounts in EUR.\n");
  await page.locator("section", { has: area }).getByRole("button", { name: "Save" }).click();
  await page.getByRole("button", { name: "Saved" }).waitFor();
  assert.equal(readFileSync(join(ws, "INSTRUCTIONS.md"), "utf8"), "# Instructions\n\n- Amounts in EUR.\n");
  writeFileSync(join(ws, "INSTRUCTIONS.md"), "changed elsewhere\n");
  await area.fill("mine");
  await page.locator("section", { has: area }).getByRole("button", { name: "Save" }).click();
  await page.locator("#alert").getByText(/changed since you opened it/).waitFor();
  assert.equal(readFileSync(join(ws, "INSTRUCTIONS.md"), "utf8"), "changed elsewhere\n");
});

test("readable at 320 px", async () => {
  const context = await browser.newContext({ viewport: { width: 320, height: 640 } });
  const page = await context.newPage();
  await page.goto(url);
  await page.waitForSelector("#outcome");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than a 320px screen`);
  await page.screenshot({ path: join(shots, "new-task-320px.png"), fullPage: true });
});

test("refusals: wrong Host, foreign Origin, no or wrong token, a replayed approval", async () => {
  const port = new URL(origin).port;
  const host = `127.0.0.1:${port}`;
  assert.equal((await raw("GET", "/api/runs", { Host: `evil.example:${port}` })).status, 421);
  assert.equal((await raw("GET", "/api/runs", { Host: host })).status, 401);
  assert.equal((await raw("GET", "/?token=0123456789abcdef0123456789abcdef", { Host: host })).status, 401);
  const exchange = await raw("GET", new URL(url).pathname + new URL(url).search, { Host: host });
  assert.equal(exchange.status, 303);
  const cookie = exchange.headers["set-cookie"][0];
  assert.match(cookie, /HttpOnly/);
  assert.match(cookie, /SameSite=Strict/);
  const session = cookie.split(";")[0];
  assert.equal(exchange.headers["x-frame-options"], "DENY");
  assert.equal(exchange.headers["access-control-allow-origin"], undefined);
  const task = JSON.stringify({ outcome: "Make an inventory of the notes folder", grants: [{ path: "projects/notes" }], mode: "ask" });
  const json = { Host: host, Cookie: session, "Content-Type": "application/json" };
  assert.equal((await raw("POST", "/api/tasks", { ...json, Origin: "http://evil.example" }, task)).status, 403);
  assert.equal((await raw("POST", "/api/tasks", json, task)).status, 403, "no Origin at all");
  assert.equal((await raw("POST", "/api/tasks", { ...json, Origin: origin, "Content-Type": "text/plain" }, task)).status, 415);
  assert.equal((await raw("GET", "/files/output/..%2FINSTRUCTIONS.md", { Host: host, Cookie: session })).status, 400);
  assert.equal((await raw("GET", "/files/output/", { Host: host, Cookie: session })).status >= 400, true);

  // A real approval answered twice: the second is refused.
  const started = await raw("POST", "/api/tasks", { ...json, Origin: origin }, task);
  assert.equal(started.status, 200, started.body);
  const run = JSON.parse(started.body).run;
  let approval;
  for (let i = 0; i < 200 && !approval; i++) {
    const journal = execFileSync(bin, ["show", run, "--workspace", ws, "--events"], { encoding: "utf8" });
    const line = journal.split("\n").find((l) => l.includes('"awaiting_approval"'));
    if (line) approval = JSON.parse(line).approval ?? JSON.parse(line).event?.approval;
    else await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(approval, "the run asked for an approval");
  const answer = JSON.stringify({ approve: false });
  assert.equal((await raw("POST", `/api/approvals/${approval}`, { ...json, Origin: origin }, answer)).status, 200);
  assert.equal((await raw("POST", `/api/approvals/${approval}`, { ...json, Origin: origin }, answer)).status, 409);
});
