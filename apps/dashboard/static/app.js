// agentkit dashboard: one panel per stream; live over a WebSocket, a recording over HTTP with a scrubber.
// Plain JavaScript and <canvas>, nothing loaded from elsewhere. Protocol: see apps/dashboard/server.py.
"use strict";

const KIND_COLORS = { silence: "rgb(120,120,120)", standby: "rgb(255,190,0)", response: "rgb(0,200,80)" };
const KIND_LEVEL = { silence: 0.35, standby: 0.7, response: 1.0 };
const LIVE_DECISIONS = 3000; // decisions a live panel keeps (the timeline shows the last LIVE_WINDOW)
const LIVE_WINDOW = 600;
const LIST_MAX = 200;
const PLOT_WINDOW_S = 120;

const dash = {
  mode: null,
  streams: new Map(),
  ws: null,
  ended: false,
  stats: { connects: 0, reconnects: 0, updates: 0, framesReceived: 0, bytes: 0 },
  dropSocket() { if (this.ws) this.ws.close(4000, "dropped by the page"); },
};
window.agentkitDashboard = dash;

const $ = (root, sel) => root.querySelector(sel);
const enc = encodeURIComponent;

function fmt(v, digits = 0) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return typeof v === "number" ? v.toFixed(digits) : String(v);
}

function setConn(state, text) {
  const el = document.getElementById("conn");
  el.dataset.state = state;
  el.textContent = text;
}

// ------------------------------------------------------------------ panels
function panel(name) {
  let s = dash.streams.get(name);
  if (s) return s;
  const el = document.getElementById("panel-template").content.firstElementChild.cloneNode(true);
  el.dataset.stream = name;
  el.dataset.mode = dash.mode;
  $(el, ".name").textContent = name;
  document.getElementById("streams").appendChild(el);
  document.getElementById("empty").hidden = true;
  s = {
    name, el, decisions: [], series: [], responses: [], actions: [], counters: {}, status: "waiting",
    frame: null, frameUrl: null, index: 0, loading: false, pending: null, playing: null, dirty: true,
  };
  dash.streams.set(name, s);
  if (dash.mode === "replay") setupScrub(s);
  return s;
}

function trim(arr, max) { if (arr.length > max) arr.splice(0, arr.length - max); }

function applyUpdate(msg) {
  const s = panel(msg.stream);
  dash.stats.updates += 1;
  if (msg.decisions) {
    for (const d of msg.decisions) {
      s.decisions.push(d);
      if (d.kind === "response") s.responses.push(d);
    }
    trim(s.decisions, LIVE_DECISIONS);
    trim(s.responses, LIST_MAX);
  }
  if (msg.actions) { s.actions.push(...msg.actions); trim(s.actions, LIST_MAX); }
  if (msg.series) { s.series.push(...msg.series); trim(s.series, 600); }
  if (msg.counters) s.counters = msg.counters;
  if (msg.status) s.status = msg.status;
  s.dirty = true;
  schedule();
}

function showFrame(s, blob, header) {
  const url = URL.createObjectURL(blob);
  const img = $(s.el, ".frame");
  const prev = s.frameUrl;
  s.frameUrl = url;
  img.onload = () => { if (prev) URL.revokeObjectURL(prev); };
  img.src = url;
  img.dataset.frameId = header.id ?? "";
  img.dataset.seq = header.seq;
  if (header.i !== undefined) img.dataset.index = header.i;
  s.frame = header;
  $(s.el, ".frame-info").textContent =
    `#${header.seq} · t=${fmt(header.pts, 1)} s · ${header.kind}` + (header.encode_ms !== undefined ? ` · ${fmt(header.encode_ms, 1)} ms` : "");
}

function onBinary(buf) {
  const dv = new DataView(buf);
  if (dv.getUint32(0) !== 0x414b4631) return; // "AKF1"
  const n = dv.getUint32(4);
  const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buf, 8, n)));
  dash.stats.framesReceived += 1;
  showFrame(panel(header.stream), new Blob([new Uint8Array(buf, 8 + n)], { type: "image/jpeg" }), header);
}

// ------------------------------------------------------------------ rendering
let scheduled = false;
function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(() => { scheduled = false; for (const s of dash.streams.values()) if (s.dirty) render(s); });
}

function render(s) {
  s.dirty = false;
  const c = s.counters || {};
  const el = s.el;
  const st = $(el, ".status");
  st.textContent = s.status;
  st.dataset.status = s.status;
  $(el, ".v-processed").textContent = fmt(c.processed);
  $(el, ".v-fps").textContent = fmt(c.fps);
  $(el, ".v-p50").textContent = fmt(c.latency_ms && c.latency_ms.p50, 1);
  $(el, ".v-p95").textContent = fmt(c.latency_ms && c.latency_ms.p95, 1);
  $(el, ".v-dropped").textContent = fmt(c.dropped);
  $(el, ".v-responses").textContent = fmt(c.responses);
  $(el, ".v-actions").textContent = c.actions ? `${c.actions}${c.action_errors ? ` (${c.action_errors}✗)` : ""}` : "0";
  const dashSkipped = (c.dashboard ? c.dashboard.frames_skipped : 0) + (c.client ? c.client.frames_skipped : 0);
  $(el, ".v-skipped").textContent = dash.mode === "replay" ? "–" : fmt(dashSkipped);
  drawTimeline(s);
  const xr = plotRange(s);
  plot($(el, ".plot-latency"), s.series, [["p95", "--p95"], ["p50", "--p50"]], xr, s.cursorT);
  plot($(el, ".plot-fps"), s.series, [["in_fps", "--in"], ["fps", "--fps"]], xr, s.cursorT);
  renderLists(s);
}

function plotRange(s) {
  if (!s.series.length) return [0, 1];
  const last = s.series[s.series.length - 1].t;
  const first = s.series[0].t;
  return dash.mode === "live" ? [Math.max(first, last - PLOT_WINDOW_S), Math.max(last, first + 1)] : [first, Math.max(last, first + 1)];
}

function fitCanvas(cv) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(50, Math.round(cv.clientWidth * dpr));
  const h = Math.round((Number(cv.getAttribute("height")) || 100) * dpr);
  if (cv.width !== w) cv.width = w;
  if (cv.height !== h) { cv.height = h; cv.style.height = `${h / dpr}px`; }
  const ctx = cv.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.clearRect(0, 0, cv.width, cv.height);
  return [ctx, cv.width, cv.height, dpr];
}

function cssColor(name) { return getComputedStyle(document.documentElement).getPropertyValue(name).trim(); }

function drawTimeline(s) {
  const cv = $(s.el, ".timeline");
  const [ctx, w, h, dpr] = fitCanvas(cv);
  const all = s.decisions;
  const shown = dash.mode === "live" ? all.slice(-LIVE_WINDOW) : all;
  const n = dash.mode === "live" ? LIVE_WINDOW : Math.max(1, all.length);
  const colw = w / n;
  // several decisions in one pixel column: the strongest state wins (a Response is never hidden)
  const cols = new Map();
  shown.forEach((d, k) => {
    const x = Math.floor(k * colw);
    const prev = cols.get(x);
    if (!prev || KIND_LEVEL[d.kind] > KIND_LEVEL[prev.kind]) cols.set(x, d);
  });
  for (const [x, d] of cols) {
    const lh = (h - 6 * dpr) * KIND_LEVEL[d.kind];
    ctx.fillStyle = KIND_COLORS[d.kind];
    ctx.fillRect(x, h - lh, Math.max(1, Math.ceil(colw)), lh);
  }
  for (const [x, d] of cols) { // Responses on top, at least 3 px wide: the moments that matter
    if (d.kind !== "response") continue;
    ctx.fillStyle = KIND_COLORS.response;
    ctx.fillRect(x - dpr, 0, Math.max(3 * dpr, Math.ceil(colw)), h);
  }
  if (dash.mode === "replay" && all.length) {
    const x = (s.index + 0.5) * colw;
    ctx.fillStyle = "#fff";
    ctx.fillRect(Math.round(x) - dpr, 0, 2 * dpr, h);
  }
  cv.dataset.decisions = String(all.length);
}

function plot(cv, series, keys, [x0, x1], cursorT) {
  const [ctx, w, h, dpr] = fitCanvas(cv);
  const pad = { l: 34 * dpr, r: 6 * dpr, t: 6 * dpr, b: 16 * dpr };
  const pts = series.filter((p) => p.t >= x0 && p.t <= x1);
  let ymax = 0;
  for (const p of pts) for (const [k] of keys) if (p[k] !== null && p[k] !== undefined) ymax = Math.max(ymax, p[k]);
  const step = niceStep((ymax || 1) / 4);
  ymax = Math.max(step, Math.ceil((ymax || 1) / step) * step);
  const ticks = Math.round(ymax / step);
  const X = (t) => pad.l + ((t - x0) / Math.max(1e-9, x1 - x0)) * (w - pad.l - pad.r);
  const Y = (v) => h - pad.b - (v / ymax) * (h - pad.t - pad.b);
  ctx.strokeStyle = "#2c313a";
  ctx.fillStyle = "#8b929c";
  ctx.lineWidth = 1;
  ctx.font = `${10 * dpr}px system-ui, sans-serif`;
  for (let i = 0; i <= ticks; i++) {
    const v = step * i;
    const y = Y(v);
    ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
    ctx.fillText(fmtTick(v), 2 * dpr, y + 3 * dpr);
  }
  ctx.fillText(`${Math.round(x0)} s`, pad.l, h - 3 * dpr);
  const endLabel = `${Math.round(x1)} s`;
  ctx.fillText(endLabel, w - pad.r - ctx.measureText(endLabel).width, h - 3 * dpr);
  for (const [k, color] of keys) {
    ctx.strokeStyle = cssColor(color);
    ctx.lineWidth = 1.5 * dpr;
    ctx.beginPath();
    let pen = false;
    for (const p of pts) {
      const v = p[k];
      if (v === null || v === undefined) { pen = false; continue; }
      if (pen) ctx.lineTo(X(p.t), Y(v)); else ctx.moveTo(X(p.t), Y(v));
      pen = true;
    }
    ctx.stroke();
  }
  if (cursorT !== undefined && cursorT !== null) {
    ctx.fillStyle = "rgba(255,255,255,.7)";
    ctx.fillRect(X(cursorT), pad.t, dpr, h - pad.t - pad.b);
  }
  cv.dataset.points = String(pts.length);
}

function niceStep(v) {
  const e = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * e) return m * e;
  return 10 * e;
}

function fmtTick(v) { return Number.isInteger(v) ? String(v) : v.toFixed(1); }

function callText(c) {
  const args = c.arguments && Object.keys(c.arguments).length ? JSON.stringify(c.arguments) : "";
  return `${c.name}(${args.length > 80 ? args.slice(0, 77) + "…" : args})`;
}

function renderLists(s) {
  const rl = $(s.el, ".responses");
  const responses = s.responses.slice(-LIST_MAX).reverse();
  rl.replaceChildren(...responses.map((d) => {
    const li = document.createElement("li");
    const calls = (d.tool_calls || []).map(callText).join(", ");
    li.innerHTML = "<time></time><span></span>";
    li.firstChild.textContent = `${fmt(d.pts, 1)} s`;
    li.lastChild.textContent = [d.text, calls].filter(Boolean).join(" — ") || "(response)";
    if (d.i !== undefined) { li.dataset.index = d.i; if (d.i === s.index) li.className = "current"; }
    return li;
  }));
  const al = $(s.el, ".actions");
  const actions = s.actions.slice(-LIST_MAX).reverse();
  al.replaceChildren(...actions.map((a) => {
    const li = document.createElement("li");
    li.className = a.ok ? "ok" : "err";
    li.innerHTML = "<time></time><span></span>";
    li.firstChild.textContent = `#${a.seq}`;
    const out = a.ok ? `ok${a.output !== null && a.output !== undefined ? " " + JSON.stringify(a.output).slice(0, 80) : ""}` : `error: ${a.error}`;
    li.lastChild.textContent = `${callText(a.call)} → ${out} (${fmt(a.duration_ms)} ms)`;
    li.dataset.seq = a.seq;
    return li;
  }));
}

// ------------------------------------------------------------------ live
let backoff = 500;
function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/ws`);
  ws.binaryType = "arraybuffer";
  dash.ws = ws;
  ws.onopen = () => {
    dash.stats.connects += 1;
    backoff = 500;
    setConn("open", "live");
  };
  ws.onmessage = (ev) => {
    if (typeof ev.data !== "string") { dash.stats.bytes += ev.data.byteLength; onBinary(ev.data); return; }
    dash.stats.bytes += ev.data.length;
    const msg = JSON.parse(ev.data);
    if (msg.type === "hello") {
      document.getElementById("title").textContent = msg.title || "";
      // a reconnect starts from scratch: the server sends everything it still holds
      for (const s of dash.streams.values()) { s.decisions = []; s.responses = []; s.actions = []; s.series = []; }
      for (const name of msg.streams) panel(name);
    } else if (msg.type === "update") {
      applyUpdate(msg);
    } else if (msg.type === "bye") {
      dash.ended = true;
      setConn("ended", "run ended");
    }
  };
  ws.onclose = () => {
    if (dash.ws !== ws) return;
    dash.ws = null;
    if (dash.ended) return;
    dash.stats.reconnects += 1;
    setConn("reconnecting", "reconnecting…");
    setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 5000);
  };
}

// ------------------------------------------------------------------ replay
function setupScrub(s) {
  const el = s.el;
  $(el, ".scrub").hidden = false;
  const slider = $(el, ".slider");
  slider.addEventListener("input", () => setIndex(s, Number(slider.value)));
  $(el, ".prev").addEventListener("click", () => setIndex(s, s.index - 1));
  $(el, ".next").addEventListener("click", () => setIndex(s, s.index + 1));
  $(el, ".play").addEventListener("click", () => togglePlay(s));
  const tl = $(el, ".timeline");
  const seek = (ev) => {
    const r = tl.getBoundingClientRect();
    setIndex(s, Math.floor(((ev.clientX - r.left) / r.width) * s.decisions.length));
  };
  tl.addEventListener("pointerdown", (ev) => { seek(ev); tl.setPointerCapture(ev.pointerId); });
  tl.addEventListener("pointermove", (ev) => { if (ev.buttons) seek(ev); });
  $(el, ".responses").addEventListener("click", (ev) => {
    const li = ev.target.closest("li");
    if (li && li.dataset.index !== undefined) setIndex(s, Number(li.dataset.index));
  });
}

function setIndex(s, i) {
  const last = Math.max(0, s.frames - 1);
  i = Math.max(0, Math.min(last, i | 0));
  s.index = i;
  const d = s.decisions[i];
  $(s.el, ".slider").value = String(i);
  $(s.el, ".pos").textContent = d ? `${i + 1}/${s.frames} · t=${fmt(d.pts, 1)} s · ${d.kind}` : "no frames";
  s.cursorT = d ? d.pts : null;
  s.dirty = true;
  schedule();
  if (!s.frames) return;
  if (s.loading) { s.pending = i; return; }
  loadFrame(s, i);
}

async function loadFrame(s, i) {
  s.loading = true;
  try {
    const r = await fetch(`/api/streams/${enc(s.name)}/frames/${i}.jpg`);
    if (r.ok) showFrame(s, await r.blob(), JSON.parse(r.headers.get("X-Frame") || "{}"));
  } finally {
    s.loading = false;
    if (s.pending !== null && s.pending !== i) { const p = s.pending; s.pending = null; loadFrame(s, p); }
    else s.pending = null;
  }
}

function togglePlay(s) {
  const btn = $(s.el, ".play");
  if (s.playing) { clearTimeout(s.playing); s.playing = null; btn.textContent = "▶"; return; }
  btn.textContent = "❚❚";
  const step = () => {
    if (s.index >= s.frames - 1) { s.playing = null; btn.textContent = "▶"; return; }
    const now = s.decisions[s.index], next = s.decisions[s.index + 1];
    if (!s.loading) setIndex(s, s.index + 1);
    const wait = now && next ? Math.min(1000, Math.max(20, (next.pts - now.pts) * 1000)) : 100;
    s.playing = setTimeout(step, wait);
  };
  step();
}

async function startReplay(info) {
  setConn("ended", "recording");
  for (const name of info.streams) {
    const s = panel(name);
    const tl = await (await fetch(`/api/streams/${enc(name)}/timeline`)).json();
    s.decisions = tl.decisions;
    s.responses = tl.decisions.filter((d) => d.kind === "response");
    s.actions = tl.actions.map((a, k) => ({ ...a, n: k + 1 }));
    s.series = tl.series;
    s.counters = tl.counters;
    s.status = "recording";
    s.frames = tl.frames;
    $(s.el, ".slider").max = String(Math.max(0, tl.frames - 1));
    $(s.el, ".name").textContent = name;
    $(s.el, ".name").title = tl.folder;
    setIndex(s, 0);
  }
}

// ------------------------------------------------------------------ start
async function start() {
  const info = await (await fetch("/api/info")).json();
  dash.mode = info.mode;
  const badge = document.getElementById("mode");
  badge.textContent = info.mode;
  badge.dataset.mode = info.mode;
  document.getElementById("title").textContent = info.title || "";
  document.title = `agentkit ${info.mode}${info.title ? ": " + info.title : ""}`;
  if (info.mode === "live") connect();
  else await startReplay(info);
}

window.addEventListener("resize", () => { for (const s of dash.streams.values()) s.dirty = true; schedule(); });
start().catch((e) => setConn("ended", `error: ${e}`));
