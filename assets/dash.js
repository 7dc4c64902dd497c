// anomalyd dashboard: live updates without reloading the page. Every few seconds the
// page polls the JSON its <body data-poll> names (the same API scripts use) and
// rewrites its live parts with textContent only: nothing from the API becomes markup.
"use strict";
(function () {
  const poll = document.body.dataset.poll;
  const PERIOD_MS = 5000;

  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  function sig(v) {
    if (v === 0) return "0";
    const a = Math.abs(v);
    if (a >= 100) return v.toFixed(0);
    return v.toFixed(Math.min(12, Math.max(0, 2 - Math.floor(Math.log10(a)))));
  }
  function bytes(v) {
    if (v == null) return "-";
    let u = 0;
    while (Math.abs(v) >= 1024 && u + 1 < units.length) { v /= 1024; u++; }
    return u === 0 ? v.toFixed(0) + " B" : sig(v) + " " + units[u];
  }
  function percent(v) { return v == null ? "-" : sig(v * 100) + " %"; }
  function value(v) {
    if (v == null) return "-";
    const a = Math.abs(v);
    if (a >= 1e9) return sig(v / 1e9) + "G";
    if (a >= 1e6) return sig(v / 1e6) + "M";
    if (a >= 1e4) return sig(v / 1e3) + "k";
    return Number.isInteger(v) ? String(v) : sig(v);
  }
  function duration(s) {
    if (s == null || !isFinite(s)) return "-";
    s = Math.round(Math.max(0, s));
    const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
    if (d > 0) return d + " d " + h + " h";
    if (h > 0) return h + " h " + String(m).padStart(2, "0") + " min";
    if (m > 0) return m + " min";
    return s + " s";
  }
  function time(ms) {
    return new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
  function set(id, text) {
    const el = document.getElementById(id);
    if (el && el.textContent !== text) el.textContent = text;
    return el;
  }
  // Rebuild a table body: each row is a list of cells, a cell a string or
  // {text, href, cls}; `rowClass` and `rowData` mark the row.
  function rows(tbodySel, items, cells, rowClass, empty) {
    const tbody = document.querySelector(tbodySel);
    if (!tbody) return;
    const out = [];
    for (const it of items) {
      const tr = document.createElement("tr");
      if (rowClass) tr.className = rowClass(it);
      if (it.id) tr.dataset.id = it.id;
      for (const c of cells(it)) {
        const td = document.createElement("td");
        const cell = typeof c === "string" ? { text: c } : c;
        let el = td;
        if (cell.href) { el = document.createElement("a"); el.href = cell.href; td.appendChild(el); }
        if (cell.cls) { const span = document.createElement("span"); span.className = cell.cls; el.appendChild(span); el = span; }
        el.textContent = cell.text;
        tr.appendChild(td);
      }
      out.push(tr);
    }
    if (out.length === 0 && empty) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      const td = document.createElement("td");
      td.colSpan = empty[0];
      td.textContent = empty[1];
      tr.appendChild(td);
      out.push(tr);
    }
    tbody.replaceChildren(...out);
  }
  function ticketRows(list) {
    rows("#tickets tbody", list, (t) => [
      { text: t.id, href: "/tickets/" + encodeURIComponent(t.id) },
      { text: t.status, cls: "status " + t.status },
      { text: t.severity, cls: "sev " + t.severity },
      t.label, t.title, t.assignee || "-", time(t.opened_ms), duration(t.duration_seconds),
    ], () => "ticket-row", [8, "No tickets."]);
  }

  function overview(s) {
    const m = s.model;
    let phase = m.phase;
    if (phase === "warming_up") phase = "warming up: scores in " + duration(m.ready_seconds);
    else if (phase === "probation") phase = "probation: model " + duration(m.age_seconds) + " old, pages in " + duration(m.ready_seconds);
    else if (phase === "trained") phase = "trained, model " + duration(m.age_seconds) + " old";
    set("phase", phase);
    set("score", value(s.score));
    set("threshold", value(s.threshold));
    const a = set("anomaly", s.anomaly ? "anomalous" : "normal");
    if (a) a.className = s.anomaly ? "alarm" : "";
    if (s.fault_risk != null) set("risk", percent(s.fault_risk));
    rows("#causes tbody", s.causes, (c) => [c.feature, value(c.contribution)]);
    rows("#resources tbody", s.resources, (r) => [
      r.name, percent(r.used_ratio), bytes(r.size_bytes), bytes(r.available_bytes),
      r.seconds_until_exhaustion == null ? "not at this trend" : duration(r.seconds_until_exhaustion),
    ], (r) => "resource " + r.kind);
    ticketRows(s.tickets_open);
    if (s.at_ms > 0) set("at", time(s.at_ms));
  }

  function ticket(t) {
    const st = set("status", t.status);
    if (st) st.className = "status " + t.status;
    set("severity", t.severity);
    set("label", t.label);
    set("assignee", t.assignee || "-");
    set("duration", duration(t.duration_seconds));
    set("resolution", t.resolution || "-");
    rows("#timeline tbody", t.timeline || [], (e) => [time(e.at_ms), e.kind, e.summary], (e) => "event " + e.kind);
  }

  function apply(data) {
    if (Array.isArray(data)) ticketRows(data);
    else if (data.model) overview(data);
    else if (data.id) ticket(data);
    set("updated", new Date().toISOString().slice(11, 19) + " UTC");
  }

  async function tick() {
    try {
      const r = await fetch(poll, { credentials: "same-origin", cache: "no-store" });
      if (r.ok) apply(await r.json());
    } catch (e) {
      // The daemon restarting or the network gone: the next poll tries again.
    }
  }

  // The charts (server-rendered SVG) are redrawn from their own URL, less often.
  async function charts() {
    for (const el of document.querySelectorAll("[data-chart]")) {
      try {
        const r = await fetch(el.dataset.chart, { credentials: "same-origin", cache: "no-store" });
        if (r.ok) {
          const doc = new DOMParser().parseFromString(await r.text(), "image/svg+xml");
          const svg = doc.documentElement;
          if (svg && svg.nodeName === "svg") el.replaceChildren(document.importNode(svg, true));
        }
      } catch (e) {
        // As above.
      }
    }
  }

  if (poll) {
    tick();
    setInterval(tick, PERIOD_MS);
  }
  if (document.querySelector("[data-chart]")) setInterval(charts, 60000);
})();
