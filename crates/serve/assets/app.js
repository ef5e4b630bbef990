// The cairn dashboard: plain JavaScript over the REST API (/api/v1), no
// framework and no build step. The session is an HttpOnly cookie the
// server sets when a token is shown once; every change asks first.
"use strict";

const $ = (sel) => document.querySelector(sel);

// An element: h("td", { class: "num", onclick: f }, child, "text", ...).
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat()) {
    if (kid !== undefined && kid !== null) el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

function bytes(n) {
  if (n === null || n === undefined) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(n < 10 ? 2 : 1)) + " " + units[i];
}

function seconds(s) {
  if (s === null || s === undefined) return "-";
  if (s < 120) return s.toFixed(s < 10 ? 1 : 0) + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

// Local time as 2026-12-06 14:05, written out by hand: unambiguous, and
// Intl's first use costs a headless browser some 100 ms.
function when(t) {
  if (!t) return "-";
  const d = new Date(t), p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}
const day = (t) => when(t).slice(0, 10);
const enc = (path) => path.split("/").filter((c) => c).map(encodeURIComponent).join("/");

function fail(e) {
  $("#error").textContent = String(e.message || e);
}

// A call of the API; JSON in and out, errors thrown with the server's line.
async function api(path, options = {}) {
  const init = { credentials: "same-origin", ...options, headers: { ...(options.headers || {}) } };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const r = await fetch("/api/v1" + path, init);
  if (r.status === 401) {
    showLogin();
    throw new Error("signed out: give a token");
  }
  const type = r.headers.get("content-type") || "";
  const body = type.includes("json") ? await r.json() : await r.text();
  if (!r.ok) throw new Error((body && body.error) || r.status + " " + r.statusText);
  return body;
}

// Signing in ------------------------------------------------------------

async function signIn(token) {
  const r = await fetch("/api/v1/session", { method: "POST", headers: { Authorization: "Bearer " + token } });
  if (!r.ok) throw new Error(r.status === 401 ? "that token is not known to this server" : "sign-in failed: " + r.status);
  return (await r.json()).who;
}

function showLogin() {
  $("#login").hidden = false;
  $("#home").hidden = true;
  $("#browser").hidden = true;
  $("#signout").hidden = true;
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    await signIn($("#token").value.trim());
    $("#token").value = "";
    $("#login").hidden = true;
    await begin();
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
});

$("#signout").addEventListener("click", async () => {
  await fetch("/api/v1/session", { method: "DELETE" });
  showLogin();
});

// Jobs -------------------------------------------------------------------

function badge(job) {
  if (job.running) return ["running", "running"];
  if (job.last && !["success", "warning"].includes(job.last.outcome)) return ["failed", "failed"];
  if (!job.last_good) return ["never", "no backup yet"];
  if (job.stale) return ["stale", "stale"];
  return ["fresh", "fresh"];
}

async function act(question, path, body) {
  if (!confirm(question)) return;
  try {
    await api(path, { method: "POST", body });
    $("#error").textContent = "";
  } catch (e) {
    fail(e);
  }
}

function jobCard(job) {
  const [kind, label] = badge(job);
  const drill = job.last_drill;
  const rto = job.rto_seconds;
  const drillText = drill
    ? `${drill.outcome}, ${seconds((new Date(drill.ended) - new Date(drill.started)) / 1000)}${rto ? " (RTO " + seconds(rto) + ")" : ""}, ${when(drill.ended)}`
    : rto ? "none yet (RTO " + seconds(rto) + ")" : "none";
  return h("div", { class: "card job", "data-job": job.job },
    h("h3", {}, job.job, h("span", { class: "badge " + kind }, label)),
    h("dl", {},
      h("dt", {}, "Last backup"), h("dd", {}, job.last ? `${job.last.outcome}, ${when(job.last.ended)}` : "never"),
      h("dt", {}, "Newest good"), h("dd", {}, job.age_seconds !== null ? seconds(job.age_seconds) + " ago" + (job.rpo_seconds ? " (RPO " + seconds(job.rpo_seconds) + ")" : "") : "-"),
      h("dt", {}, "Success rate"), h("dd", {}, job.success_rate === null ? "-" : Math.round(job.success_rate * 100) + "% of " + job.runs + " runs"),
      h("dt", {}, "Last drill"), h("dd", {}, drillText),
      h("dt", {}, "Schedule"), h("dd", {}, job.schedule || "not scheduled"),
      h("dt", {}, "Repositories"), h("dd", {}, job.repositories.join(", "))),
    job.problems.length ? h("ul", { class: "problems" }, job.problems.map((p) => h("li", {}, p))) : null,
    h("div", { class: "actions" },
      h("button", { onclick: () => act(`Run job ${job.job} now?`, `/jobs/${encodeURIComponent(job.job)}/run`), disabled: !!job.running }, "Run now"), " ",
      h("button", { onclick: () => act(`Run a restore drill of ${job.job} now?`, `/jobs/${encodeURIComponent(job.job)}/drill`) }, "Drill now")));
}

// A line chart of [{t, v}] as SVG; `format` labels values.
function chart(title, points, format, badPoints) {
  const W = 320, H = 140, L = 4, R = 4, T = 22, B = 18;
  const card = h("div", { class: "card chart" }, h("h3", {}, title));
  if (points.length === 0) {
    card.append(h("p", { class: "muted" }, "no data yet"));
    return card;
  }
  const ts = points.map((p) => p.t), vs = points.map((p) => p.v);
  const t0 = Math.min(...ts), t1 = Math.max(...ts), top = Math.max(...vs), vmax = top || 1;
  const x = (t) => L + (t1 === t0 ? (W - L - R) / 2 : ((t - t0) / (t1 - t0)) * (W - L - R));
  const y = (v) => T + (1 - v / vmax) * (H - T - B);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
    return e;
  };
  const line = points.map((p) => `${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  el("polygon", { class: "area", points: `${x(t0)},${y(0)} ${line} ${x(t1)},${y(0)}` });
  el("polyline", { class: "line", points: line });
  points.forEach((p, i) => el("circle", { class: badPoints && badPoints[i] ? "bad" : "dot", cx: x(p.t), cy: y(p.v), r: 2.5 }));
  el("text", { x: L, y: 12 }, "max " + format(top));
  el("text", { x: W - R, y: 12, "text-anchor": "end" }, "last " + format(vs[vs.length - 1]));
  el("text", { x: L, y: H - 4 }, day(t0));
  el("text", { x: W - R, y: H - 4, "text-anchor": "end" }, day(t1));
  card.append(svg);
  return card;
}

async function loadJobs() {
  const box = $("#jobs");
  let jobs;
  try {
    jobs = await api("/jobs");
  } catch (e) {
    box.replaceChildren(h("p", { class: "muted" }, e.message));
    return [];
  }
  box.replaceChildren(...(jobs.length ? jobs.map(jobCard) : [h("p", { class: "muted" }, "the config has no jobs")]));
  return jobs;
}

async function loadCharts(jobs) {
  const cards = [];
  // All at once: the first screen waits for the slowest, not the sum.
  const [repo, ...histories] = await Promise.all([
    api("/repository"),
    ...jobs.map((job) => api(`/jobs/${encodeURIComponent(job.job)}/history?limit=60`)),
  ]);
  $("#where").textContent = repo.location;
  cards.push(chart("Repository growth (bytes added, summed)", repo.growth.map((g) => ({ t: Date.parse(g.time), v: g.total })), bytes));
  for (const [i, job] of jobs.entries()) {
    const runs = histories[i].filter((r) => r.kind === "backup").reverse();
    const t = (r) => Date.parse(r.started);
    const bad = runs.map((r) => !["success", "warning"].includes(r.outcome));
    cards.push(chart(`${job.job}: duration`, runs.map((r) => ({ t: t(r), v: (Date.parse(r.ended) - t(r)) / 1000 })), seconds, bad));
    cards.push(chart(`${job.job}: bytes added`, runs.map((r) => ({ t: t(r), v: r.bytes_added })), bytes, bad));
  }
  $("#charts").replaceChildren(...cards);
}

// Snapshots ----------------------------------------------------------------

async function restoreAsk(snap) {
  const target = prompt(`Restore snapshot ${snap.short_id} into which folder on the server? (absolute, new or empty)`, "/var/tmp/restore-" + snap.short_id);
  if (!target) return;
  const path = prompt("Which path of the snapshot? (empty: all of it)", "");
  if (path === null) return;
  if (!confirm(`Restore ${snap.short_id}:${path || "/"} into ${target}?`)) return;
  try {
    await api(`/snapshots/${snap.id}/restore`, { method: "POST", body: path ? { target, path } : { target } });
  } catch (e) {
    fail(e);
  }
}

async function forgetAsk(snap) {
  if (!confirm(`Forget snapshot ${snap.short_id} of ${when(snap.time)}? Its data is freed by the next prune.`)) return;
  try {
    await api(`/snapshots/${snap.id}`, { method: "DELETE" });
    await loadSnapshots();
  } catch (e) {
    fail(e);
  }
}

async function loadSnapshots() {
  const list = (await api("/snapshots")).reverse();
  $("#snapshot-count").textContent = `(${list.length})`;
  $("#snapshots tbody").replaceChildren(...list.map((s) => h("tr", { "data-snapshot": s.id },
    h("td", {}, when(s.time)),
    h("td", { class: "mono" }, h("a", { href: `#/browse/${s.id}/` }, s.short_id)),
    h("td", {}, s.hostname),
    h("td", { class: "mono" }, s.paths.join(" ")),
    h("td", {}, (s.tags || []).join(", "), s.protected ? " (protected)" : ""),
    h("td", { class: "num" }, bytes(s.summary && s.summary.total_bytes)),
    h("td", {}, h("div", { class: "actions" },
      h("a", { class: "button", href: `#/browse/${s.id}/` }, "Browse"),
      h("button", { onclick: () => restoreAsk(s) }, "Restore"),
      h("button", { class: "danger", disabled: s.protected, title: s.protected ? "protected: cairn tag --unprotect first" : null, onclick: () => forgetAsk(s) }, "Forget"))))));
}

// Work under way, from the server's event stream ------------------------

const ops = new Map();

function renderOps() {
  const list = [...ops.values()].sort((a, b) => b.id - a.id).slice(0, 8);
  if (!list.length) return;
  $("#ops").replaceChildren(...list.map((op) => {
    const pct = op.total_bytes ? Math.min(100, (100 * op.done_bytes) / op.total_bytes) : op.state === "running" ? 0 : 100;
    return h("div", { class: "op", "data-op": op.id, "data-state": op.state },
      h("div", {}, h("span", { class: "badge " + (op.state === "running" ? "running" : op.state === "succeeded" ? "fresh" : "failed") }, op.state), " ",
        h("strong", {}, op.kind), " ", op.what, h("span", { class: "muted" }, ` by ${op.who}, ${when(op.started)}`)),
      op.total_bytes ? h("div", { class: "bar" }, h("span", { style: `width:${pct.toFixed(1)}%` })) : null,
      op.total_bytes ? h("div", { class: "muted" }, `${bytes(op.done_bytes)} of ${bytes(op.total_bytes)}`) : null,
      h("pre", {}, op.result || op.log.slice(-3).join("\n")));
  }));
}

let stream = null;

function listen() {
  // Closed when the page is left: a browser keeps a left page alive for a
  // while (back-forward cache), and its open stream would hold one of
  // the six connections a browser allows per server.
  window.addEventListener("pagehide", () => stream && stream.close());
  window.addEventListener("pageshow", (ev) => { if (ev.persisted) stream = openStream(); });
  stream = openStream();
}

function openStream() {
  const es = new EventSource("/api/v1/events");
  es.addEventListener("operation", (ev) => {
    const op = JSON.parse(ev.data);
    const was = ops.get(op.id);
    ops.set(op.id, op);
    renderOps();
    if (op.state !== "running" && (!was || was.state === "running")) refreshHome();
  });
  return es;
}

// Browsing a snapshot -------------------------------------------------------

const textLike = /\.(txt|conf|cfg|ini|log|md|json|ya?ml|toml|sql|sh|py|rs|js|css|html?|xml|csv|service|timer)$|^[^.]*$/i;
const imageLike = /\.(png|jpe?g|gif|webp|bmp)$/i;

async function preview(url, name) {
  const box = $("#preview");
  if (imageLike.test(name)) {
    box.replaceChildren(h("h3", {}, name), h("img", { src: url, alt: name }));
    return;
  }
  const r = await fetch(url, { headers: { Range: "bytes=0-65535" } });
  const buf = new Uint8Array(await r.arrayBuffer());
  if (buf.includes(0)) {
    box.replaceChildren(h("p", { class: "muted" }, `${name}: binary, no preview`));
    return;
  }
  const text = new TextDecoder().decode(buf);
  box.replaceChildren(h("h3", {}, name, r.status === 206 && buf.length === 65536 ? h("span", { class: "muted" }, " (first 64 KiB)") : null), h("pre", { class: "file-preview" }, text));
}

async function browse(id, path) {
  $("#home").hidden = true;
  $("#browser").hidden = false;
  $("#preview").replaceChildren();
  const snap = await api(`/snapshots/${id}`);
  const parts = path.split("/").filter((c) => c);
  const crumbs = [h("a", { href: "#/" }, "snapshots"), " / ", h("a", { href: `#/browse/${id}/` }, snap.short_id)];
  parts.forEach((p, i) => crumbs.push(" / ", h("a", { href: `#/browse/${id}/${parts.slice(0, i + 1).map(encodeURIComponent).join("/")}` }, p)));
  $("#crumbs").replaceChildren(...crumbs);
  const base = parts.length ? "/" + parts.map(encodeURIComponent).join("/") : "";
  const folder = await api(`/snapshots/${id}/browse${base}`);
  const archive = `/api/v1/snapshots/${id}/archive${base}`;
  $("#archive-links").replaceChildren("Download this folder: ", h("a", { class: "button", href: archive + "?format=tar", download: "" }, "tar"), " ", h("a", { class: "button", href: archive + "?format=zip", download: "" }, "zip"));
  $("#entries tbody").replaceChildren(...folder.entries.map((e) => {
    const child = base + "/" + encodeURIComponent(e.name);
    const download = `/api/v1/snapshots/${id}/download${child}`;
    const name = e.type === "dir"
      ? h("a", { href: `#/browse/${id}${child}`, class: "dir" }, e.name + "/")
      : e.type === "file"
        ? h("a", { href: "#", class: "file", onclick: (ev) => { ev.preventDefault(); preview(download, e.name).catch(fail); } }, e.name)
        : h("span", {}, e.name, e.target ? " → " + e.target : "", h("span", { class: "muted" }, ` (${e.type})`));
    return h("tr", {},
      h("td", {}, name),
      h("td", { class: "num" }, e.type === "file" ? bytes(e.size) : ""),
      h("td", {}, when(e.mtime)),
      h("td", {}, e.type === "file" ? h("a", { class: "button download", href: download, download: e.name }, "Download") : null));
  }));
  document.body.dataset.shown = "/" + parts.join("/");
}

// Putting it together -------------------------------------------------------

async function refreshHome() {
  try {
    const [jobs] = await Promise.all([loadJobs(), loadSnapshots()]);
    await loadCharts(jobs);
    // Milliseconds from the request of the page to all of it shown (the
    // benchmark reads it).
    if (!document.body.dataset.readyMs) document.body.dataset.readyMs = Math.round(performance.now());
    document.body.dataset.loaded = "home";
  } catch (e) {
    fail(e);
  }
}

async function route() {
  $("#error").textContent = "";
  const m = location.hash.match(/^#\/browse\/([0-9a-f]+)\/?(.*)$/);
  try {
    if (m) {
      await browse(m[1], decodeURIComponent(m[2]).split("/").filter((c) => c).join("/"));
      document.body.dataset.loaded = "browse";
    } else {
      $("#browser").hidden = true;
      $("#home").hidden = false;
      await refreshHome();
    }
  } catch (e) {
    fail(e);
  }
}

async function begin() {
  const r = await fetch("/api/v1/session");
  if (!r.ok) return showLogin();
  $("#who").textContent = (await r.json()).who;
  $("#signout").hidden = false;
  $("#login").hidden = true;
  if (!listening) {
    listening = true;
    listen();
  }
  await route();
}

// A link with the token (`#token=...`, as cairn serve prints it) signs in
// once; the token then leaves the address bar and history. True if one
// was there.
async function takeToken() {
  const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (!m) return false;
  try {
    await signIn(decodeURIComponent(m[1]));
  } catch (e) {
    $("#login-error").textContent = e.message;
  }
  const rest = location.hash.replace(/(^#|&)token=[^&]+/, "$1").replace(/^#&/, "#");
  history.replaceState(null, "", location.pathname + (rest === "#" ? "" : rest));
  return true;
}

let listening = false;
window.addEventListener("hashchange", async () => {
  if (await takeToken()) await begin();
  else await route();
});
(async () => {
  await takeToken();
  await begin();
})();
