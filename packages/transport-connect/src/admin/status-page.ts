// The admin port's status page (`GET /`): one HTML document with inline CSS
// and JS, no build step, no external asset. The script polls /status.json and
// fills the tables with textContent only (member addresses, group names,
// keys and errors come from the network), and runs the key lookup box.
import { createHash } from "node:crypto";

const STYLE = `
body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
table { border-collapse: collapse; } th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.open, .half-open, .draining, .starting { color: #b00; font-weight: bold; } .closed, .serving { color: #070; }
#result { white-space: pre-wrap; font-family: monospace; margin-top: .5em; }
#error { color: #b00; }
`;

const SCRIPT = `
"use strict";
const $ = (id) => document.getElementById(id);
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "–" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
}
function fill(id, rows, columns) {
  const body = $(id);
  body.replaceChildren();
  for (const item of rows) {
    const row = document.createElement("tr");
    for (const [read, cls] of columns) {
      const value = read(item);
      cell(row, value, cls === "state" ? String(value) : cls);
    }
    body.appendChild(row);
  }
}
const pct = (x) => (x === null ? null : (x * 100).toFixed(1) + " %");
const ms = (x) => (x === null ? null : x + " ms");
function budget(g) {
  return g.limitBytes === 0 ? g.bytes + " / unbounded" : g.bytes + " / " + g.limitBytes;
}
async function refresh() {
  try {
    const response = await fetch("status.json", { cache: "no-store" });
    if (!response.ok) throw new Error("status.json: HTTP " + response.status);
    const s = await response.json();
    $("node").textContent = s.node;
    $("listening").textContent = s.listening === null ? "not listening" : s.listening;
    $("phase").textContent = s.phase;
    $("phase").className = s.phase;
    $("version").textContent = s.version;
    $("inflight").textContent = String(s.server.inFlight);
    fill("members", s.members, [
      [(m) => m.address + (m.self ? " (this node)" : "")],
      [(m) => (m.self ? "self" : m.breaker), "state"],
      [(m) => m.breakerOpened, "n"],
      [(m) => m.calls, "n"],
      [(m) => m.failedCalls, "n"],
      [(m) => ms(m.meanMs), "n"],
      [(m) => ms(m.p99Ms), "n"],
    ]);
    fill("groups", s.groups, [
      [(g) => g.name],
      [(g) => g.gets, "n"],
      [(g) => pct(g.hitRate), "n"],
      [(g) => g.errors, "n"],
      [budget, "n"],
      [(g) => g.items, "n"],
      [(g) => g.loads, "n"],
      [(g) => g.localLoads, "n"],
      [(g) => g.localLoadErrors, "n"],
      [(g) => ms(g.meanLoadMs), "n"],
    ]);
    $("error").textContent = "";
  } catch (error) {
    $("error").textContent = String(error && error.message ? error.message : error);
  }
}
$("lookup").addEventListener("submit", async (event) => {
  event.preventDefault();
  const query = new URLSearchParams({ group: $("group").value, key: $("key").value });
  $("result").textContent = "…";
  try {
    const response = await fetch("lookup?" + query.toString(), { cache: "no-store" });
    const r = await response.json();
    const lines = response.ok
      ? ["found: " + r.found, "bytes: " + r.bytes, "err: " + (r.err || "–"), "preview: " + (r.preview === null ? "–" : r.preview)]
      : ["error: " + r.error];
    $("result").textContent = lines.join("\\n");
  } catch (error) {
    $("result").textContent = "error: " + String(error);
  }
});
refresh();
setInterval(refresh, 2000);
`;

const hash = (text: string) => `'sha256-${createHash("sha256").update(text).digest("base64")}'`;

/**
 * The page's Content-Security-Policy: only its own inline script and style
 * (by hash), requests to this origin only, no frames, no form posts.
 */
export const STATUS_PAGE_CSP = [
  "default-src 'none'",
  `script-src ${hash(SCRIPT)}`,
  `style-src ${hash(STYLE)}`,
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** The status page. Static: every value is filled in by the script from /status.json. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>DistCache node</title>
<style>${STYLE}</style>
</head>
<body>
<h1>DistCache node <span id="node"></span></h1>
<p>Listening on <span id="listening"></span> · <span id="phase"></span> · version <span id="version"></span> · requests in flight <span id="inflight"></span> <span id="error"></span></p>
<h2>Members</h2>
<table>
<thead><tr><th>member</th><th>breaker</th><th>times opened</th><th>calls</th><th>failed</th><th>mean</th><th>p99 ≤</th></tr></thead>
<tbody id="members"></tbody>
</table>
<h2>Groups</h2>
<table>
<thead><tr><th>group</th><th>gets</th><th>hit rate</th><th>errors</th><th>bytes / budget</th><th>items</th><th>loads</th><th>getter calls</th><th>getter errors</th><th>mean getter</th></tr></thead>
<tbody id="groups"></tbody>
</table>
<h2>Look up a key</h2>
<form id="lookup">
<label>group <input id="group" name="group" required maxlength="256"></label>
<label>key <input id="key" name="key" required maxlength="1024"></label>
<button type="submit">Get</button>
</form>
<div id="result"></div>
<script>${SCRIPT}</script>
</body>
</html>
`;
