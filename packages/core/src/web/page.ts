/**
 * The live log page served at `/` (web/routes.ts): sign in, pick an app, see
 * its deployments and follow one's log over the WebSocket, follow the app's
 * container logs (`app-logs:<appId>`), start/stop/deploy, and see this
 * month's use against the plan (warnings live on `usage:<id>`).
 * Plain HTML with inline CSS and script, no external resources; the route's
 * Content-Security-Policy allows exactly these two inline blocks by hash, and
 * Trusted Types: data only ever reaches the DOM as text.
 */

export const PAGE_STYLE = `
:root { color-scheme: light dark; --fg: #1b1f24; --bg: #fff; --muted: #667; --line: #d0d7de; --accent: #0969da;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; }
@media (prefers-color-scheme: dark) { :root { --fg: #e6edf3; --bg: #0d1117; --muted: #8b949e; --line: #30363d; --accent: #4493f8; } }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: var(--bg); }
header { display: flex; align-items: center; gap: .75rem; padding: .6rem 1rem; border-bottom: 1px solid var(--line); }
header h1 { font-size: 1.1rem; margin: 0; flex: 1; }
main { padding: 1rem; max-width: 72rem; margin: 0 auto; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
[hidden] { display: none !important; }
form { display: grid; gap: .5rem; max-width: 22rem; }
input, button { font: inherit; padding: .45rem .6rem; border: 1px solid var(--line); border-radius: 6px;
  color: inherit; background: var(--bg); }
button { cursor: pointer; }
button:disabled { opacity: .6; cursor: progress; }
button.primary { background: var(--accent); border-color: var(--accent); color: #fff; }
ul { list-style: none; margin: 0; padding: 0; display: grid; gap: .3rem; }
.pick { width: 100%; display: flex; justify-content: space-between; gap: .5rem; text-align: left; }
.pick[aria-current="true"] { border-color: var(--accent); box-shadow: inset 3px 0 0 var(--accent); }
.badge { font-size: .8rem; padding: .05rem .5rem; border-radius: 99px; border: 1px solid var(--line); color: var(--muted); }
.badge[data-status="running"], .badge[data-status="succeeded"] { color: #1a7f37; border-color: #1a7f37; }
.badge[data-status="starting"], .badge[data-status="stopping"], .badge[data-status="queued"] { color: #9a6700; border-color: #9a6700; }
.badge[data-status="error"], .badge[data-status="failed"] { color: #cf222e; border-color: #cf222e; }
.row { display: flex; flex-wrap: wrap; align-items: center; gap: .5rem; margin-bottom: .75rem; }
.row h2 { margin: 0; }
.error { color: #cf222e; }
.muted { color: var(--muted); font-size: .9rem; }
#layout { display: grid; gap: 1rem; }
#log { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; word-break: break-all;
  background: #0d1117; color: #e6edf3; padding: .6rem; border-radius: 6px; min-height: 8rem; max-height: 60vh; overflow: auto; }
#log [data-stream="stderr"] { color: #ff7b72; }
#log [data-stream="system"] { color: #8b949e; }
#log [data-service]::before { content: attr(data-service) " | "; color: #8b949e; }
section + section { margin-top: 1rem; }
@media (min-width: 48rem) { #layout { grid-template-columns: 16rem 1fr; } }
#usage { display: grid; grid-template-columns: auto auto; gap: .15rem .75rem; margin: 0; font-size: .9rem; }
#usage dd { margin: 0; text-align: right; font-variant-numeric: tabular-nums; }
#usage dd.over { color: #cf222e; font-weight: 600; }
`;

// Plain ES2020 for the browser; no backticks or template substitutions inside.
export const PAGE_SCRIPT = `
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const el = (tag, props, ...children) => {
    const e = Object.assign(document.createElement(tag), props);
    e.append(...children);
    return e;
  };
  const setBadge = (b, status) => { b.textContent = status; b.dataset.status = status; };
  const badge = (status) => { const b = el("span", { className: "badge" }); setBadge(b, status); return b; };
  const key = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const notice = (text, isError) => { $("notice").textContent = text || ""; $("notice").className = isError ? "error" : "muted"; };
  const RANK = { queued: 0, running: 1 };
  const rank = (s) => (s in RANK ? RANK[s] : 2);

  let session = null; // { token, refreshToken, user }: in memory only
  let refreshing = null;
  let current = null; // the picked app
  let appSeen = 0; // app status messages received, so an older HTTP answer never overwrites a newer one
  let rows = new Map(); // deployment id -> { dep, button }
  const log = { id: null, last: 0, seqs: new Set() };
  const containers = { appId: null, seen: new Set() }; // the app whose container logs are shown
  let ws = null;
  let retry = 0;
  const wanted = new Set();

  async function post(path, body, token) {
    const headers = { "content-type": "application/json" };
    if (token) headers.authorization = "Bearer " + token;
    return fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  }

  function refresh() {
    if (!session) return Promise.resolve(false);
    refreshing = refreshing || (async () => {
      const res = await post("/api/auth/refresh", { refreshToken: session.refreshToken });
      if (!res.ok || !session) return false;
      const data = await res.json();
      session = { token: data.token, refreshToken: data.refreshToken, user: data.user || session.user };
      return true;
    })().finally(() => { refreshing = null; });
    return refreshing;
  }

  async function api(method, path, idempotencyKey) {
    const send = () => {
      if (!session) throw new Error("Not signed in");
      const headers = { authorization: "Bearer " + session.token };
      if (idempotencyKey) headers["idempotency-key"] = idempotencyKey;
      return fetch(path, { method, headers });
    };
    let res = await send();
    if (res.status === 401 && (await refresh())) res = await send();
    if (res.status === 401) { signOut("Your session has ended; sign in again."); throw new Error("Signed out"); }
    const data = await res.json().catch(() => null);
    if (!res.ok) throw new Error((data && (data.detail || data.title)) || "HTTP " + res.status);
    return data;
  }

  $("signin-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const id = $("login-id").value.trim();
    const password = $("login-password").value;
    const button = $("signin-button");
    button.disabled = true;
    $("login-error").textContent = "";
    try {
      const res = await post("/api/auth/login", id.includes("@") ? { email: id, password } : { username: id, password });
      const data = await res.json().catch(() => null);
      if (!res.ok) throw new Error((data && data.detail) || "Sign-in failed (HTTP " + res.status + ")");
      session = { token: data.token, refreshToken: data.refreshToken, user: data.user };
      $("login-password").value = "";
      $("who").textContent = data.user.username;
      $("signin").hidden = true;
      $("dashboard").hidden = false;
      $("signout").hidden = false;
      if (!ws) connect();
      subscribe("usage:" + data.user.id);
      await Promise.all([loadApps(), loadUsage()]);
    } catch (err) {
      $("login-error").textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });

  function signOut(message) {
    const old = session;
    session = null;
    if (old && !message) post("/api/auth/logout", { refreshToken: old.refreshToken }, old.token).catch(() => {});
    const sock = ws;
    ws = null;
    wanted.clear();
    if (sock) sock.close();
    current = null;
    log.id = null;
    containers.appId = null;
    rows = new Map();
    for (const id of ["apps", "deployments", "log", "who", "notice", "usage"]) $(id).replaceChildren();
    $("app-pane").hidden = true;
    $("log-pane").hidden = true;
    $("dashboard").hidden = true;
    $("signout").hidden = true;
    $("signin").hidden = false;
    $("login-error").textContent = message || "";
  }
  $("signout").addEventListener("click", () => signOut());

  async function loadApps() {
    const apps = await api("GET", "/api/apps?format=array");
    $("apps").replaceChildren(...apps.map((app) => {
      const button = el("button", { type: "button", className: "pick" }, el("span", { textContent: app.name }), badge(app.status));
      button.dataset.id = app.id;
      button.addEventListener("click", () => pickApp(app).catch((err) => notice(err.message, true)));
      return el("li", {}, button);
    }));
    if (apps.length === 0) $("apps").append(el("li", { className: "muted", textContent: "No apps yet." }));
  }

  /** This month's use against the plan: running minutes (booked and live), deploy minutes, deployments, requests. */
  async function loadUsage() {
    const u = await api("GET", "/api/usage");
    const limit = (name) => (u.limits[name] === undefined ? "" : " / " + u.limits[name]);
    const over = (use, name) => u.limits[name] !== undefined && use >= u.limits[name] * 0.8;
    const running = u.appRunningMinutes + u.liveAppMinutes;
    const deployMinutes = Math.ceil(u.deploySeconds / 60);
    const rows = [
      ["Plan", u.plan, false],
      ["App minutes", running + limit("appMinutes"), over(running, "appMinutes")],
      ["Deploy minutes", deployMinutes + limit("deployMinutes"), over(deployMinutes, "deployMinutes")],
      ["Deployments", String(u.deployments), false],
      ["Requests", String(u.requests), false],
    ];
    $("usage-month").textContent = u.month;
    $("usage").replaceChildren(...rows.flatMap(([name, value, warn]) => [
      el("dt", { textContent: name }),
      el("dd", { textContent: value, className: warn ? "over" : "" }),
    ]));
  }

  function select(list, id) {
    for (const b of $(list).querySelectorAll("button.pick")) b.setAttribute("aria-current", String(b.dataset.id === id));
  }

  function appStatus(id, status) {
    for (const b of $("apps").querySelectorAll("button.pick")) if (b.dataset.id === id) setBadge(b.lastChild, status);
    if (current && current.id === id) { current.status = status; setBadge($("app-status"), status); }
  }

  async function pickApp(app) {
    if (current) unsubscribe("app:" + current.id);
    closeLog();
    current = app;
    rows = new Map();
    select("apps", app.id);
    $("app-name").textContent = app.name;
    setBadge($("app-status"), app.status);
    $("deployments").replaceChildren();
    notice("");
    $("app-pane").hidden = false;
    subscribe("app:" + app.id);
    const page = await api("GET", "/api/deployments?limit=20&appId=" + encodeURIComponent(app.id));
    if (current === app) for (const d of page.items.reverse()) upsertDeployment(d);
  }

  function upsertDeployment(d) {
    if (!current || d.appId !== current.id) return;
    let row = rows.get(d.id);
    if (row && rank(row.dep.status) > rank(d.status)) return;
    if (!row) {
      const button = el("button", { type: "button", className: "pick" });
      button.dataset.id = d.id;
      button.addEventListener("click", () => openLog(rows.get(d.id).dep));
      row = { dep: d, button };
      rows.set(d.id, row);
      $("deployments").prepend(el("li", {}, button));
    }
    row.dep = d;
    const when = new Date(d.queuedAt).toLocaleString();
    const what = d.trigger + (d.commitSha ? " " + d.commitSha.slice(0, 7) : "");
    row.button.replaceChildren(el("span", { textContent: when + " \\u00b7 " + what }), badge(d.status));
    row.button.setAttribute("aria-current", String(d.id === log.id));
    if (d.id === log.id) setBadge($("log-status"), d.status);
  }

  function openLog(d) {
    if (log.id === d.id) return;
    closeLog();
    Object.assign(log, { id: d.id, last: 0, seqs: new Set() });
    $("log").replaceChildren();
    $("log-title").textContent = "Deployment " + d.id;
    setBadge($("log-status"), d.status);
    $("log-pane").hidden = false;
    select("deployments", d.id);
    subscribe("deployment:" + d.id);
  }

  function closeLog() {
    if (log.id) unsubscribe("deployment:" + log.id);
    if (containers.appId) unsubscribe("app-logs:" + containers.appId);
    log.id = null;
    containers.appId = null;
    $("log-pane").hidden = true;
  }

  /** The app's container logs: the last lines over HTTP, then new ones live (a line seen both ways shows once). */
  function openContainerLogs() {
    if (!current || containers.appId === current.id) return;
    const app = current;
    closeLog();
    Object.assign(containers, { appId: app.id, seen: new Set() });
    $("log").replaceChildren();
    $("log-title").textContent = "Container logs of " + app.name;
    setBadge($("log-status"), "live");
    $("log-pane").hidden = false;
    select("deployments", "");
    subscribe("app-logs:" + app.id);
    api("GET", "/api/apps/" + encodeURIComponent(app.id) + "/logs?tail=200")
      .then((data) => { if (containers.appId === app.id) addContainerLines(data.items, true); })
      .catch((err) => notice(err.message, true));
  }

  function addContainerLines(lines, older) {
    const box = $("log");
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    const fresh = [];
    for (const l of lines) {
      const id = l.time + " " + l.service + " " + l.line;
      if (containers.seen.has(id)) continue;
      containers.seen.add(id);
      const div = el("div", { textContent: l.line });
      div.dataset.service = l.service;
      div.title = l.time;
      fresh.push(div);
    }
    if (older) box.prepend(...fresh);
    else box.append(...fresh);
    if (atEnd) box.scrollTop = box.scrollHeight;
  }

  function addLines(lines) {
    const box = $("log");
    const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 8;
    for (const l of lines) {
      if (log.seqs.has(l.seq)) continue;
      log.seqs.add(l.seq);
      const div = el("div", { textContent: l.line });
      div.dataset.seq = String(l.seq);
      div.dataset.stream = l.stream;
      if (l.seq > log.last) {
        box.append(div);
        log.last = l.seq;
      } else {
        box.insertBefore(div, Array.from(box.children).find((c) => Number(c.dataset.seq) > l.seq) || null);
      }
    }
    if (atEnd) box.scrollTop = box.scrollHeight;
  }

  async function act(button, path, then) {
    if (!current) return;
    const app = current;
    const seen = appSeen;
    button.disabled = true;
    notice("");
    try {
      then(await api("POST", "/api/apps/" + encodeURIComponent(app.id) + path, key()), app, seen);
    } catch (err) {
      notice(err.message, true);
    } finally {
      button.disabled = false;
    }
  }
  const lifecycle = (data, app, seen) => {
    if (appSeen === seen) appStatus(app.id, data.status);
  };
  $("start").addEventListener("click", () => act($("start"), "/start", lifecycle));
  $("stop").addEventListener("click", () => act($("stop"), "/stop", lifecycle));
  $("container-logs").addEventListener("click", openContainerLogs);
  $("deploy").addEventListener("click", () =>
    act($("deploy"), "/deployments", (data) => { upsertDeployment(data.deployment); openLog(data.deployment); }));

  // The WebSocket: same origin, /ws; subscriptions are re-sent (logs from the last seq seen) after a reconnect.
  const subscribeMessage = (channel) => {
    const m = { action: "subscribe", channel };
    if (channel === "deployment:" + log.id && log.last > 0) m.since = log.last;
    return m;
  };
  const send = (m) => { if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(m)); };
  function subscribe(channel) { wanted.add(channel); send(subscribeMessage(channel)); }
  function unsubscribe(channel) { wanted.delete(channel); send({ action: "unsubscribe", channel }); }

  function connect() {
    if (!session) return;
    const configured = document.querySelector('meta[name="hoist-ws-url"]')?.getAttribute("content");
    const base = configured || (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
    const url = base + "?token=" + encodeURIComponent(session.token);
    const sock = new WebSocket(url);
    const again = retry > 0;
    let opened = false;
    ws = sock;
    sock.onopen = () => {
      opened = true;
      retry = 0;
      $("live").textContent = "live";
      for (const channel of wanted) send(subscribeMessage(channel));
      if (again) resync().catch(() => {});
    };
    sock.onmessage = (ev) => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      onMessage(m);
    };
    sock.onclose = async () => {
      if (ws !== sock) return; // closed on purpose
      ws = null;
      $("live").textContent = "offline";
      if (!session) return;
      retry++;
      // Refused at connect: most likely an expired access token.
      if (!opened && !(await refresh().catch(() => true))) return signOut("Your session has ended; sign in again.");
      setTimeout(() => { if (session && !ws) connect(); }, Math.min(10000, 250 * 2 ** retry));
    };
  }
  setInterval(() => send({ action: "ping" }), 240000);

  async function resync() {
    if (current) { const a = await api("GET", "/api/apps/" + encodeURIComponent(current.id)); appStatus(a.id, a.status); }
    if (log.id) upsertDeployment(await api("GET", "/api/deployments/" + encodeURIComponent(log.id)));
  }

  function onMessage(m) {
    if (m.type === "log") {
      if (m.deploymentId === log.id) addLines(m.lines);
    } else if (m.type === "app-log") {
      if (m.appId === containers.appId) addContainerLines(m.lines, false);
    } else if (m.type === "app-log-error") {
      if (m.appId === containers.appId) notice(m.message, true);
    } else if (m.type === "status" && m.resource === "app") {
      appSeen++;
      appStatus(m.id, m.status);
      if (m.status === "running" || m.status === "stopping") loadUsage().catch(() => {});
    } else if (m.type === "status" && m.resource === "deployment") {
      if (m.deployment) upsertDeployment(m.deployment);
      if (m.id === log.id) setBadge($("log-status"), m.status);
    } else if (m.type === "usage") {
      notice("You have used " + m.threshold + " % of your plan's " + m.limit + " this month (" + m.use + " of " + m.allowed + ")", m.threshold >= 100);
      loadUsage().catch(() => {});
    } else if (m.type === "error") {
      notice(m.message, true);
    }
  }
})();
`;

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hoist</title>
<link rel="icon" href="data:,">
<style>${PAGE_STYLE}</style>
</head>
<body>
<header>
  <h1>Hoist</h1>
  <span id="live" class="muted" aria-live="polite"></span>
  <span id="who" class="muted" data-testid="who"></span>
  <button id="signout" type="button" hidden>Sign out</button>
</header>
<main>
  <section id="signin" aria-labelledby="signin-title">
    <h2 id="signin-title">Sign in</h2>
    <form id="signin-form">
      <label for="login-id">Username or email</label>
      <input id="login-id" name="username" autocomplete="username" required maxlength="254">
      <label for="login-password">Password</label>
      <input id="login-password" name="password" type="password" autocomplete="current-password" required>
      <button id="signin-button" class="primary" type="submit">Sign in</button>
      <p id="login-error" class="error" role="alert"></p>
    </form>
  </section>
  <div id="dashboard" hidden>
    <p id="notice" class="muted" role="status"></p>
    <div id="layout">
      <nav aria-labelledby="apps-title">
        <h2 id="apps-title">Apps</h2>
        <ul id="apps" data-testid="apps"></ul>
        <section aria-labelledby="usage-title">
          <h2 id="usage-title">Use in <span id="usage-month"></span></h2>
          <dl id="usage" data-testid="usage"></dl>
        </section>
      </nav>
      <div>
        <section id="app-pane" aria-labelledby="app-name" hidden>
          <div class="row">
            <h2 id="app-name"></h2>
            <span id="app-status" class="badge" data-testid="app-status"></span>
          </div>
          <div class="row">
            <button id="start" type="button">Start</button>
            <button id="stop" type="button">Stop</button>
            <button id="container-logs" type="button">Container logs</button>
            <button id="deploy" class="primary" type="button">Deploy</button>
          </div>
          <h2>Deployments</h2>
          <ul id="deployments" data-testid="deployments"></ul>
        </section>
        <section id="log-pane" aria-labelledby="log-title" hidden>
          <div class="row">
            <h2 id="log-title"></h2>
            <span id="log-status" class="badge" data-testid="log-status"></span>
          </div>
          <div id="log" role="log" aria-label="Log" data-testid="log" tabindex="0"></div>
        </section>
      </div>
    </div>
  </div>
</main>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
