// Draws the charts of a page from their JSON specs, and keeps the live page current over SSE.
"use strict";

const CONFIG = { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"] };
const fmtInt = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmtMoney = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });

function money(v) { return v === null || v === undefined ? "–" : fmtMoney.format(v); }
function num(v) { return v === null || v === undefined ? "–" : fmtInt.format(v); }

function drawCharts() {
  for (const spec of document.querySelectorAll("script[data-chart-spec]")) {
    const target = document.querySelector(`[data-chart="${spec.dataset.chartSpec}"]`);
    const fig = JSON.parse(spec.textContent);
    if (target && window.Plotly) Plotly.newPlot(target, fig.data, fig.layout, CONFIG);
  }
}

function setText(id, text) {
  const el = document.getElementById(id);
  if (el && el.textContent !== text) el.textContent = text;
}

function fillTable(id, rows, cells) {
  const body = document.querySelector(`#${id} tbody`);
  if (!body) return;
  const fresh = document.createElement("tbody");
  for (const row of rows) {
    const tr = document.createElement("tr");
    for (const [value, numeric] of cells(row)) {
      const td = document.createElement("td");
      td.textContent = value;
      if (numeric) td.className = "n";
      tr.appendChild(td);
    }
    fresh.appendChild(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 4;
    td.textContent = "nothing yet";
    tr.appendChild(td);
    fresh.appendChild(tr);
  }
  body.replaceWith(fresh);
}

function drawMinutes(s) {
  const target = document.getElementById("chart-minutes");
  if (!target || !window.Plotly) return;
  const x = s.minutes.map((m) => m.minute);
  const data = [
    { type: "bar", name: "revenue", x, y: s.minutes.map((m) => m.revenue), marker: { color: "#8fb8e8" } },
    { type: "scatter", mode: "lines+markers", name: "purchases", x, y: s.minutes.map((m) => m.purchases), yaxis: "y2", line: { color: "#0b6bcb" } },
  ];
  const layout = {
    title: { text: "Revenue and purchases per minute", font: { size: 15 } },
    margin: { l: 50, r: 50, t: 40, b: 40 }, legend: { orientation: "h" }, autosize: true,
    yaxis: { title: { text: "revenue" } }, yaxis2: { title: { text: "purchases" }, overlaying: "y", side: "right" },
  };
  Plotly.react(target, data, layout, CONFIG);
}

function renderLive(s) {
  setText("kpi-purchases", num(s.sales.purchases));
  setText("kpi-revenue", money(s.sales.revenue));
  setText("kpi-carts", num(s.abandoned.carts));
  setText("kpi-carts-value", money(s.abandoned.value));
  setText("kpi-emails-sent", num(s.emails.sent || 0));
  setText("kpi-emails-queued", num(s.emails.queued || 0));
  setText("kpi-recovered", money(s.recovered_revenue));
  setText("kpi-bots", num(s.bot_alert_count));
  setText("kpi-lag", num(s.health.log_lag));
  setText("kpi-eps", num(s.health.events_per_s));
  setText("latest-minute", s.latest_minute || "–");
  setText("top-day-date", s.day || "–");
  setText("updated-at", s.generated_at);
  const product = (r) => [[String(r.product_id), true], [num(r.purchases), true], [money(r.revenue), true]];
  fillTable("top-now", s.top_now, product);
  fillTable("top-day", s.top_day, product);
  fillTable("bot-alerts", s.bot_alerts, (r) => [[String(r.user_id), true], [r.detected_at, false], [r.rule, false], [r.score === null ? "" : r.score.toFixed(2), true]]);
  fillTable("dq", s.dq, (r) => [[r.reason, false], [num(r.rows), true]]);
  const empty = document.getElementById("sales-empty");
  if (empty && s.minutes.length) empty.remove();
  drawMinutes(s);
  document.body.dataset.liveUpdatedAt = String(Date.now());
}

function followLive() {
  const initial = document.getElementById("snapshot");
  if (!initial) return;
  renderLive(JSON.parse(initial.textContent));
  const state = document.getElementById("live-state");
  const source = new EventSource("/live/stream");
  source.addEventListener("open", () => { state.textContent = "live"; state.className = "pill live"; });
  source.addEventListener("error", () => { state.textContent = "reconnecting…"; state.className = "pill offline"; });
  source.addEventListener("snapshot", (event) => renderLive(JSON.parse(event.data)));
}

document.addEventListener("DOMContentLoaded", () => { drawCharts(); followLive(); });
