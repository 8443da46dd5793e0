"use strict";
// The morphogen dashboard: plain JS and canvas. Live (MORPHOGEN_DATA null): polls the server's
// JSON API every second. Report: MORPHOGEN_DATA holds the run, nothing is fetched.
(function () {
  const STAGES = window.MORPHOGEN_STAGES;
  const REPORT = window.MORPHOGEN_DATA;
  const LATTICE_WIDTH = 720;
  const LATTICE_MAX_HEIGHT = 360;
  // Models of more layers than this are shown compact, with only the first group open at first;
  // closed groups are not drawn until opened.
  const OPEN_ALL_LAYERS = 12;
  const COMPACT_WIDTH = 340;
  const COMPACT_MAX_HEIGHT = 96;
  const MAX_EVENT_ROWS = 500;
  const MARKERS = [
    { name: "germination", stage: 1 },
    { name: "fossilization", stage: 7 },
    { name: "cull", stage: 8 },
    { name: "rollback", stage: 10 },
  ];
  const state = { run: null, view: null, version: null, selected: null, open: new Map() };
  const probe = { renders: 0, drawMs: 0, latticeMs: 0, ready: false, error: null };
  window.__morphogen = probe;
  const $ = (id) => document.getElementById(id);
  const stageIndex = Object.fromEntries(STAGES.map((s, i) => [s.name, i]));

  function fmt(v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "n/a";
    return Number(v).toFixed(digits === undefined ? 4 : digits);
  }
  function rgb(c) {
    return "rgb(" + c[0] + "," + c[1] + "," + c[2] + ")";
  }
  function el(tag, attrs, text) {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => node.setAttribute(k, v));
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function swatch(color) {
    const s = el("span", { class: "swatch" });
    s.style.background = rgb(color);
    return s;
  }
  function stageSpan(name) {
    const s = el("span", { class: "stage" }, name);
    s.style.color = name === "DORMANT" ? "#8a93a6" : rgb(STAGES[stageIndex[name]].color);
    return s;
  }

  // ---- loading ----
  async function getJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) throw new Error(url + ": " + response.status + " " + (await response.text()));
    return response.json();
  }

  async function loadRuns() {
    const runs = await getJson("api/runs");
    const select = $("run-select");
    select.replaceChildren(...runs.map((r) => el("option", { value: r.name }, r.name + " (epoch " + r.epoch + ")")));
    select.hidden = runs.length < 2;
    const wanted = decodeURIComponent(location.hash.slice(1));
    state.run = runs.some((r) => r.name === wanted) ? wanted : runs.length ? runs[0].name : null;
    select.value = state.run || "";
  }

  async function poll() {
    try {
      if (state.run) {
        const since = state.version === null ? "" : "?since=" + state.version;
        const view = await getJson("api/runs/" + encodeURIComponent(state.run) + "/view" + since);
        if (!view.unchanged) {
          render(view);
          if (state.selected) await loadLifecycle(state.selected[0], state.selected[1]);
        }
        $("status").textContent = "live: epoch " + epochOf(state.view) + ", checked " + new Date().toLocaleTimeString();
      } else {
        $("status").textContent = "no run in this folder yet";
        await loadRuns();
      }
    } catch (e) {
      $("status").textContent = "cannot reach the dashboard server (" + e.message + "); retrying";
    }
    setTimeout(poll, 1000);
  }

  function epochOf(view) {
    return view && view.metrics.length ? view.metrics[view.metrics.length - 1].epoch : 0;
  }

  // ---- rendering ----
  function render(view) {
    const start = performance.now();
    state.view = view;
    state.version = view.version;
    $("run-name").textContent = view.name;
    renderMessages(view);
    renderLegend(view);
    drawLattice(view);
    drawCurves(view);
    drawHeatmaps(view);
    renderFilterOptions(view);
    renderEvents();
    probe.drawMs = performance.now() - start;
    probe.renders += 1;
    probe.ready = true;
    document.body.dataset.ready = "1";
  }

  function renderMessages(view) {
    const lines = view.messages.slice();
    const skipped = view.skipped.reduce((a, b) => a + b, 0);
    if (skipped && !lines.some((m) => m.includes("malformed"))) lines.push(skipped + " malformed line(s) skipped");
    $("messages").replaceChildren(...lines.map((m) => el("div", {}, m)));
  }

  function renderLegend(view) {
    const totals = new Array(STAGES.length).fill(0);
    view.layers.forEach((l) => l.counts.forEach((n, i) => (totals[i] += n)));
    $("legend").replaceChildren(
      ...STAGES.map((s, i) => {
        const item = el("span", {});
        item.append(swatch(s.color), s.name + " " + totals[i]);
        return item;
      })
    );
    $("marker-legend").replaceChildren(
      ...MARKERS.map((m) => {
        const item = el("span", {});
        item.append(swatch(STAGES[m.stage].color), m.name);
        return item;
      })
    );
  }

  // ---- groups of layers by parent path (blocks.3 for blocks.3.fc1), each a <details> ----
  function groupsOf(view) {
    if (view.groups && view.groups.length) return view.groups;
    return view.layers.length ? [{ name: "", layers: view.layers.map((_, i) => i), counts: [] }] : [];
  }

  function groupOf(layer) {
    const dot = layer.lastIndexOf(".");
    return dot < 0 ? "" : layer.slice(0, dot);
  }

  function compactView(view) {
    return view.layers.length > OPEN_ALL_LAYERS;
  }

  // The <details> of `group` under `root` (created on first use, open at first when the model is
  // small or it is the first group; the user's choice is kept). `redraw` runs when it opens.
  function groupSection(root, kind, group, index, view, redraw) {
    let details = Array.from(root.children).find((d) => d.dataset.group === group.name);
    if (!details) {
      const key = kind + "|" + group.name;
      details = el("details", { class: "layer-group" });
      details.dataset.group = group.name;
      details.open = state.open.has(key) ? state.open.get(key) : !compactView(view) || index === 0;
      details.wasOpen = details.open;
      details.append(el("summary", {}), el("div", { class: "group-layers" }));
      details.addEventListener("toggle", () => {
        if (details.open === details.wasOpen) return;
        details.wasOpen = details.open;
        state.open.set(key, details.open);
        if (details.open) redraw();
      });
    }
    root.append(details);
    details.querySelector("summary").replaceChildren(...groupSummary(group, view));
    return details;
  }

  function groupSummary(group, view) {
    const layers = group.layers.map((i) => view.layers[i]);
    const seeds = layers.reduce((n, l) => n + l.stage.length, 0);
    const label = el("span", { class: "group-name" }, group.name || "top level");
    const parts = [label, " " + layers.length + (layers.length === 1 ? " layer, " : " layers, ") + seeds + " seeds"];
    const counts = new Array(STAGES.length).fill(0);
    layers.forEach((l) => l.counts.forEach((n, i) => (counts[i] += n)));
    counts.forEach((n, i) => {
      if (i === 0 || !n) return;
      const item = el("span", { class: "group-count" });
      item.append(swatch(STAGES[i].color), STAGES[i].name + " " + n);
      parts.push(item);
    });
    return parts;
  }

  // Removes children of `root` whose data-`key` is not in `wanted`.
  function prune(root, key, wanted) {
    Array.from(root.children).forEach((c) => wanted.has(c.dataset[key]) || c.remove());
  }

  // ---- the lattice: one canvas a layer, one cell a seed, drawn as ImageData ----
  function latticeGeometry(n, compact) {
    const width = compact ? COMPACT_WIDTH : LATTICE_WIDTH;
    const maxHeight = compact ? COMPACT_MAX_HEIGHT : LATTICE_MAX_HEIGHT;
    let cell = Math.floor(Math.sqrt((width * maxHeight) / Math.max(n, 1)));
    cell = Math.max(3, Math.min(28, cell));
    const cols = Math.max(1, Math.min(n, Math.floor(width / cell)));
    const rows = Math.max(1, Math.ceil(n / cols));
    return { cell: cell, cols: cols, rows: rows, width: cols * cell, height: rows * cell };
  }

  function drawLattice(view) {
    const start = performance.now();
    const root = $("lattice");
    const groups = groupsOf(view);
    prune(root, "group", new Set(groups.map((g) => g.name)));
    if (!view.layers.length) root.replaceChildren(el("p", { class: "hint" }, "No seeded layer recorded yet."));
    groups.forEach((group, index) => {
      const details = groupSection(root, "lattice", group, index, view, () => drawLattice(state.view));
      const body = details.querySelector(".group-layers");
      const layers = group.layers.map((i) => view.layers[i]);
      prune(body, "layer", new Set(layers.map((l) => l.layer)));
      if (!details.open) return;
      layers.forEach((layer) => {
        let panel = Array.from(body.children).find((p) => p.dataset.layer === layer.layer);
        if (!panel) panel = newLayerPanel(body, layer.layer);
        body.append(panel);
        const measured = layer.measured_epoch === null ? "rebuilt from events" : "state of epoch " + layer.measured_epoch;
        panel.querySelector("h3").textContent =
          layer.layer + " (" + (layer.host || "?") + ", " + layer.stage.length + " seeds, " + layer.features + " features; " + measured + ")";
        paintLayer(panel.querySelector("canvas"), layer, compactView(view));
      });
    });
    probe.latticeMs = performance.now() - start;
  }

  function newLayerPanel(root, name) {
    const panel = el("div", { class: "layer-panel" });
    panel.dataset.layer = name;
    const canvas = el("canvas", { class: "lattice-canvas" });
    canvas.dataset.layer = name;
    canvas.addEventListener("mousemove", (ev) => hover(canvas, ev));
    canvas.addEventListener("mouseleave", () => ($("tooltip").hidden = true));
    canvas.addEventListener("click", (ev) => {
      const seed = seedAt(canvas, ev);
      if (seed >= 0) selectSeed(name, seed);
    });
    panel.append(el("h3", {}), canvas);
    root.append(panel);
    return panel;
  }

  function paintLayer(canvas, layer, compact) {
    const n = layer.stage.length;
    const g = latticeGeometry(n, compact);
    canvas.width = g.width;
    canvas.height = g.height;
    canvas.geometry = g;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(g.width, g.height);
    const pixels = new Uint32Array(image.data.buffer);
    const colors = STAGES.map((s) => (255 << 24) | (s.color[2] << 16) | (s.color[1] << 8) | s.color[0]);
    pixels.fill((255 << 24) | (28 << 16) | (22 << 8) | 20);
    const size = g.cell >= 4 ? g.cell - 1 : g.cell;
    for (let i = 0; i < n; i++) {
      const x0 = (i % g.cols) * g.cell;
      const y0 = Math.floor(i / g.cols) * g.cell;
      const color = colors[layer.stage[i]] || colors[0];
      for (let y = y0; y < y0 + size; y++) pixels.fill(color, y * g.width + x0, y * g.width + x0 + size);
    }
    ctx.putImageData(image, 0, 0);
    if (state.selected && state.selected[0] === layer.layer && state.selected[1] < n) {
      const s = state.selected[1];
      ctx.strokeStyle = "#ffffff";
      ctx.lineWidth = 2;
      ctx.strokeRect((s % g.cols) * g.cell, Math.floor(s / g.cols) * g.cell, g.cell, g.cell);
    }
  }

  function seedAt(canvas, ev) {
    const g = canvas.geometry;
    const rect = canvas.getBoundingClientRect();
    const x = ((ev.clientX - rect.left) * canvas.width) / rect.width;
    const y = ((ev.clientY - rect.top) * canvas.height) / rect.height;
    const col = Math.floor(x / g.cell);
    const row = Math.floor(y / g.cell);
    const seed = row * g.cols + col;
    const n = layerNamed(canvas.dataset.layer).stage.length;
    return col >= 0 && col < g.cols && row >= 0 && seed < n ? seed : -1;
  }

  function layerNamed(name) {
    return state.view.layers.find((l) => l.layer === name);
  }

  function seedSummary(layer, seed) {
    const blueprint = layer.blueprint[seed] ? layer.blueprints[layer.blueprint[seed] - 1] : "none";
    return [
      layer.layer + " / seed " + seed + ": " + STAGES[layer.stage[seed]].name,
      "alpha " + fmt(layer.alpha[seed], 3) + "   blueprint " + blueprint,
      "variance " + fmt(layer.variance[seed]) + "   dead ratio " + fmt(layer.dead_ratio[seed], 3),
      "correlation " + fmt(layer.correlation[seed], 3) + "   blueprint rms " + fmt(layer.blueprint_rms[seed]),
      "mean " + fmt(layer.mean[seed]) + "   epochs in stage " + layer.epochs_in_stage[seed] + "   failures " + layer.failures[seed],
    ].join("\n");
  }

  function hover(canvas, ev) {
    const seed = seedAt(canvas, ev);
    const tip = $("tooltip");
    if (seed < 0) {
      tip.hidden = true;
      return;
    }
    tip.textContent = seedSummary(layerNamed(canvas.dataset.layer), seed);
    tip.style.left = ev.clientX + 14 + "px";
    tip.style.top = ev.clientY + 14 + "px";
    tip.hidden = false;
  }

  // ---- lifecycle of one seed ----
  async function selectSeed(layer, seed) {
    state.selected = [layer, seed];
    const details = Array.from($("lattice").children).find((d) => d.dataset.group === groupOf(layer));
    if (details) details.open = true; // its toggle event draws it
    drawLattice(state.view);
    await loadLifecycle(layer, seed);
  }

  async function loadLifecycle(layer, seed) {
    let story = { layer: layer, seed: seed, events: [], history: [] };
    if (REPORT) {
      story = (REPORT.lifecycles || []).find((l) => l.layer === layer && l.seed === seed) || story;
    } else {
      const url = "api/runs/" + encodeURIComponent(state.run) + "/seed/" + encodeURIComponent(layer) + "/" + seed;
      try {
        story = await getJson(url);
      } catch (e) {
        story.error = e.message;
      }
    }
    showLifecycle(story);
  }

  function showLifecycle(story) {
    const panel = $("lifecycle");
    const body = $("lifecycle-body");
    $("lifecycle-title").textContent = "Lifecycle of " + story.layer + " / seed " + story.seed;
    const layer = layerNamed(story.layer);
    const parts = [];
    if (layer && story.seed < layer.stage.length) parts.push(el("pre", {}, "now: " + seedSummary(layer, story.seed)));
    if (story.error) parts.push(el("p", {}, story.error));
    parts.push(timeline(story.history));
    if (story.events.length) {
      parts.push(el("h3", {}, "Transitions and the controller's reasons"));
      parts.push(
        table(["epoch", "step", "from", "to", "reason"], story.events, (e) => [e.epoch, e.step, stageSpan(e.from), stageSpan(e.to), e.reason])
      );
    } else {
      parts.push(el("p", { class: "no-events" }, "No transitions: this seed has stayed DORMANT."));
    }
    if (story.history.length) {
      parts.push(el("h3", {}, "State at each epoch end"));
      const cols = ["epoch", "stage", "blueprint", "alpha", "mean", "variance", "dead ratio", "correlation", "blueprint rms"];
      parts.push(
        table(cols, story.history, (h) => [
          h.epoch,
          stageSpan(h.stage),
          h.blueprint || "",
          fmt(h.alpha, 3),
          fmt(h.mean),
          fmt(h.variance),
          fmt(h.dead_ratio, 3),
          fmt(h.correlation, 3),
          fmt(h.blueprint_rms),
        ])
      );
    }
    body.replaceChildren(...parts);
    panel.hidden = false;
  }

  function timeline(history) {
    const canvas = el("canvas", { class: "timeline", width: Math.max(1, history.length) * 18, height: 14 });
    const ctx = canvas.getContext("2d");
    history.forEach((h, i) => {
      ctx.fillStyle = rgb(STAGES[stageIndex[h.stage]].color);
      ctx.fillRect(i * 18, 0, 16, 14);
    });
    return canvas;
  }

  function table(headers, rows, cells) {
    const t = el("table", {});
    const head = el("tr", {});
    headers.forEach((h) => head.append(el("th", {}, h)));
    t.append(el("thead", {}), el("tbody", {}));
    t.tHead.append(head);
    rows.forEach((row) => {
      const tr = el("tr", {});
      cells(row).forEach((c) => {
        const td = el("td", {});
        td.append(c instanceof Node ? c : String(c));
        tr.append(td);
      });
      t.tBodies[0].append(tr);
    });
    return t;
  }

  // ---- who decided, the bus round trip, and the host's widenings ----
  function describeDecisions(metrics) {
    const widenings = metrics.filter((m) => m.widened_by).map((m) => "by " + m.widened_by + " features after epoch " + m.epoch);
    const widened = widenings.length ? "Host widened " + widenings.join(", ") : "";
    const decided = metrics.filter((m) => m.decided_by);
    if (!decided.length) return widened;
    const last = decided[decided.length - 1];
    let text = "Decisions: epoch " + last.epoch + " by " + last.decided_by;
    if (last.decision_ms != null) text += " (bus round trip " + last.decision_ms.toFixed(1) + " ms)";
    const trips = decided.filter((m) => m.decision_ms != null).map((m) => m.decision_ms).sort((a, b) => a - b);
    if (trips.length > 1) {
      text += "; median round trip " + trips[Math.floor(trips.length / 2)].toFixed(1) + " ms over " + trips.length + " epochs";
    }
    const paused = decided.filter((m) => m.decided_by === "paused").map((m) => m.epoch);
    if (paused.length) text += "; growth paused (no decision in time) at epoch " + paused.join(", ");
    return widened ? text + ". " + widened : text;
  }

  // ---- training curves with lifecycle markers ----
  function drawCurves(view) {
    const m = view.metrics;
    $("decisions").textContent = describeDecisions(m);
    const points = (key) => m.map((x) => [x.epoch, x[key]]);
    const markers = markerCounts(view.events);
    drawChart($("loss-chart"), [
      { points: points("train_loss"), color: "#9ecbff", dash: [] },
      { points: points("val_loss"), color: "#ffb86c", dash: [6, 4] },
    ], markers);
    drawChart($("accuracy-chart"), [
      { points: points("train_accuracy"), color: "#9ecbff", dash: [] },
      { points: points("val_accuracy"), color: "#ffb86c", dash: [6, 4] },
    ], markers);
  }

  function markerCounts(events) {
    const out = [];
    MARKERS.forEach((marker) => {
      const byEpoch = new Map();
      events.forEach((e) => {
        if (stageIndex[e.to] === marker.stage) byEpoch.set(e.epoch, (byEpoch.get(e.epoch) || 0) + 1);
      });
      byEpoch.forEach((count, epoch) => out.push({ epoch: epoch, count: count, marker: marker }));
    });
    return out;
  }

  function drawChart(canvas, series, markers) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    const pad = { left: 52, right: 12, top: 26, bottom: 26 };
    ctx.clearRect(0, 0, w, h);
    const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p[1]));
    if (!all.length) {
      ctx.fillStyle = "#8a93a6";
      ctx.font = "13px sans-serif";
      ctx.fillText("no finished epoch yet", pad.left, h / 2);
      return;
    }
    const maxEpoch = Math.max(...all.map((p) => p[0]), ...markers.map((k) => k.epoch), 1);
    let lo = Math.min(...all.map((p) => p[1]));
    let hi = Math.max(...all.map((p) => p[1]));
    if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
    const x = (e) => pad.left + ((e - 0) / maxEpoch) * (w - pad.left - pad.right);
    const y = (v) => h - pad.bottom - ((v - lo) / (hi - lo)) * (h - pad.top - pad.bottom);
    ctx.strokeStyle = "#3a4150";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(pad.left, pad.top);
    ctx.lineTo(pad.left, h - pad.bottom);
    ctx.lineTo(w - pad.right, h - pad.bottom);
    ctx.stroke();
    ctx.fillStyle = "#8a93a6";
    ctx.font = "11px sans-serif";
    [lo, (lo + hi) / 2, hi].forEach((v) => ctx.fillText(fmt(v, 3), 4, y(v) + 4));
    const step = Math.max(1, Math.ceil(maxEpoch / 10));
    for (let e = 0; e <= maxEpoch; e += step) ctx.fillText(String(e), x(e) - 3, h - 8);
    markers.forEach((k, i) => {
      ctx.strokeStyle = rgb(STAGES[k.marker.stage].color);
      ctx.setLineDash([2, 3]);
      ctx.beginPath();
      ctx.moveTo(x(k.epoch), pad.top);
      ctx.lineTo(x(k.epoch), h - pad.bottom);
      ctx.stroke();
      ctx.setLineDash([]);
      const row = MARKERS.indexOf(k.marker);
      ctx.fillStyle = ctx.strokeStyle;
      ctx.beginPath();
      ctx.moveTo(x(k.epoch) - 5, 4 + row * 5);
      ctx.lineTo(x(k.epoch) + 5, 4 + row * 5);
      ctx.lineTo(x(k.epoch), 10 + row * 5);
      ctx.fill();
    });
    series.forEach((s) => {
      ctx.strokeStyle = s.color;
      ctx.fillStyle = s.color;
      ctx.lineWidth = 2;
      ctx.setLineDash(s.dash);
      ctx.beginPath();
      s.points.filter((p) => Number.isFinite(p[1])).forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
      ctx.stroke();
      ctx.setLineDash([]);
      s.points.filter((p) => Number.isFinite(p[1])).forEach((p) => ctx.fillRect(x(p[0]) - 2, y(p[1]) - 2, 5, 5));
    });
  }

  // ---- health heatmaps ----
  const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function ramp(t) {
    const f = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
    const i = Math.min(RAMP.length - 2, Math.floor(f));
    const u = f - i;
    return RAMP[i].map((c, k) => Math.round(c + (RAMP[i + 1][k] - c) * u));
  }

  function drawHeatmaps(view) {
    const root = $("heatmaps");
    if (!view.heatmaps.length) {
      root.replaceChildren(el("p", { class: "hint" }, "No per-seed state recorded yet (layers.jsonl)."));
      return;
    }
    const groups = groupsOf(view).filter((g) => view.heatmaps.some((m) => groupOf(m.layer) === g.name));
    prune(root, "group", new Set(groups.map((g) => g.name)));
    groups.forEach((group, index) => {
      const details = groupSection(root, "heatmaps", group, index, view, () => drawHeatmaps(state.view));
      const maps = details.open ? view.heatmaps.filter((m) => groupOf(m.layer) === group.name) : [];
      details.querySelector(".group-layers").replaceChildren(...maps.map(heatmapBlock));
    });
  }

  function heatmapBlock(map) {
    const block = el("div", { class: "heatmap-layer" });
    block.append(el("h3", {}, map.layer + " (" + map.seeds + " seeds in " + map.bins + " rows)"));
    const row = el("div", { class: "heatmap-row" });
    [["variance", "chunk variance"], ["dead_ratio", "dead-node ratio"], ["correlation", "correlation"]].forEach(([key, title]) => {
      row.append(heatmapFigure(map, map[key], title));
    });
    block.append(row);
    return block;
  }

  function heatmapFigure(map, values, title) {
    const figure = el("figure", {});
    const canvas = el("canvas", { class: "heatmap", width: 240, height: 128 });
    const finite = values.filter((v) => v !== null && Number.isFinite(v));
    const lo = finite.length ? Math.min(...finite) : 0;
    const hi = finite.length ? Math.max(...finite) : 1;
    figure.append(el("figcaption", {}, title + ": " + fmt(lo, 3) + " to " + fmt(hi, 3)), canvas);
    const ctx = canvas.getContext("2d");
    const epochs = map.epochs.length;
    const cw = canvas.width / Math.max(1, epochs);
    const ch = canvas.height / map.bins;
    for (let e = 0; e < epochs; e++) {
      for (let b = 0; b < map.bins; b++) {
        const v = values[e * map.bins + b];
        ctx.fillStyle = v === null ? "#2a2d35" : rgb(ramp(hi > lo ? (v - lo) / (hi - lo) : 0.5));
        ctx.fillRect(Math.floor(e * cw), Math.floor(b * ch), Math.ceil(cw), Math.ceil(ch));
      }
    }
    return figure;
  }

  // ---- event log ----
  function renderFilterOptions(view) {
    const select = $("filter-layer");
    const current = select.value;
    const names = view.layers.map((l) => l.layer);
    const option = (n) => el("option", { value: n }, n);
    const groups = groupsOf(view);
    const options =
      groups.length > 1
        ? groups.map((g) => {
            const optgroup = el("optgroup", { label: g.name || "top level" });
            optgroup.append(...g.layers.map((i) => option(view.layers[i].layer)));
            return optgroup;
          })
        : names.map(option);
    select.replaceChildren(el("option", { value: "" }, "all"), ...options);
    select.value = names.includes(current) ? current : "";
  }

  function renderEvents() {
    const view = state.view;
    if (!view) return;
    const layer = $("filter-layer").value;
    const seedText = $("filter-seed").value;
    const seed = seedText === "" ? null : Number(seedText);
    const stage = $("filter-stage").value;
    const rows = view.events.filter(
      (e) => (!layer || e.layer === layer) && (seed === null || e.seed === seed) && (!stage || e.from === stage || e.to === stage)
    );
    const shown = rows.slice(-MAX_EVENT_ROWS).reverse();
    $("event-count").textContent =
      rows.length + " of " + view.events.length + " events" + (rows.length > shown.length ? " (newest " + shown.length + " shown)" : "");
    $("events").tBodies[0].replaceChildren(
      ...shown.map((e) => {
        const tr = el("tr", {});
        [e.epoch, e.step, e.layer, e.seed, stageSpan(e.from), stageSpan(e.to), e.reason, e.decided_by || ""].forEach((c) => {
          const td = el("td", {});
          td.append(c instanceof Node ? c : String(c));
          tr.append(td);
        });
        tr.addEventListener("click", () => selectSeed(e.layer, e.seed));
        return tr;
      })
    );
  }

  function setUp() {
    $("filter-stage").append(...STAGES.map((s) => el("option", { value: s.name }, s.name)));
    ["filter-layer", "filter-seed", "filter-stage"].forEach((id) => $(id).addEventListener("input", renderEvents));
    $("lifecycle-close").addEventListener("click", () => {
      state.selected = null;
      $("lifecycle").hidden = true;
      drawLattice(state.view);
    });
    $("run-select").addEventListener("change", (ev) => {
      state.run = ev.target.value;
      state.version = null;
      state.selected = null;
      $("lifecycle").hidden = true;
      location.hash = encodeURIComponent(state.run);
    });
  }

  async function start() {
    setUp();
    try {
      if (REPORT) {
        state.run = REPORT.name;
        render(REPORT);
        $("status").textContent = "static report: epoch " + epochOf(REPORT);
        return;
      }
      await loadRuns();
    } catch (e) {
      probe.error = String(e);
      $("status").textContent = "error: " + e.message;
    }
    if (!REPORT) poll();
  }

  start();
})();
