// The dashboard's pages: fills the figures, tables and charts (uPlot, vendored in static/vendor)
// from the JSON the page was rendered with, then refreshes them by polling the page's data view.
// Every value is put in with textContent: nothing from the server is parsed as HTML here.
"use strict";
(function () {
  const COLOURS = {runs: "#2563eb", failed: "#b91c1c", success: "#15803d", p50: "#2563eb", p95: "#b45309",
                   cost: "#7c3aed", running: "#2563eb", queued: "#b45309"};
  const CHART_HEIGHT = 220;
  const charts = {};
  window.dacCharts = charts;  // for the browser tests: what each chart was last given

  const at = (object, path) => path.split(".").reduce((o, key) => (o == null ? o : o[key]), object);
  const FORMATS = {
    percent: (v) => (v == null ? "–" : `${(Number(v) * 100).toFixed(1)} %`),
    usd: (v) => (v == null ? "–" : Number(v).toFixed(4)),
    ms: (v) => (v == null ? "–" : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`),
    time: (v) => (v ? new Date(v).toLocaleString() : ""),
  };

  function element(tag, text, attributes) {
    const node = document.createElement(tag);
    if (text != null) node.textContent = String(text);
    Object.entries(attributes || {}).forEach(([name, value]) => node.setAttribute(name, value));
    return node;
  }

  // As dacproject.ids.short_id: the first 8 characters, and the last 4 (time-ordered ids share their start).
  const shortId = (id) => (String(id).length > 12 ? `${String(id).slice(0, 8)}\u2026${String(id).slice(-4)}` : String(id));

  function link(href, text, title) {
    return element("a", text, title ? {href, title} : {href});
  }

  function fillFields(data) {
    document.querySelectorAll("[data-field]").forEach((node) => {
      const value = at(data, node.dataset.field);
      const format = FORMATS[node.dataset.format];
      node.textContent = format ? format(value) : value == null ? "–" : String(value);
    });
  }

  // rows: objects; cells(row) gives an array of strings or nodes.
  function fillTable(id, rows, cells, emptyText) {
    const table = document.getElementById(id);
    if (!table) return;
    const body = table.tBodies[0];
    const columns = table.tHead.rows[0].cells.length;
    if (!rows.length) {
      const td = element("td", emptyText || "nothing", {colspan: columns, class: "dac-empty-row"});
      body.replaceChildren(element("tr").appendChild(td).parentNode);
      return;
    }
    body.replaceChildren(...rows.map((row) => {
      const tr = element("tr");
      cells(row).forEach((cell) => {
        const td = element("td");
        if (cell instanceof Node) td.appendChild(cell); else td.textContent = cell == null ? "" : String(cell);
        tr.appendChild(td);
      });
      return tr;
    }));
  }

  function size(container) {
    return {width: Math.max(container.clientWidth, 280), height: CHART_HEIGHT};
  }

  // One chart per container; redrawn with setData when its shape stays, rebuilt when it changes.
  function draw(id, options, columns, shape) {
    const container = document.getElementById(id);
    if (!container) return;
    const previous = charts[id];
    if (previous && previous.shape === shape) {
      previous.plot.setData(columns);
    } else {
      if (previous) previous.plot.destroy();
      container.replaceChildren();
      charts[id] = {plot: new uPlot({...size(container), ...options}, columns, container), shape};
    }
    charts[id].columns = columns;
  }

  function empty(id, text) {
    const container = document.getElementById(id);
    if (!container) return;
    if (charts[id]) { charts[id].plot.destroy(); delete charts[id]; }
    container.replaceChildren(element("div", text, {class: "dac-empty"}));
  }

  const bars = () => uPlot.paths.bars({size: [0.7, 40]});
  const thinBars = () => uPlot.paths.bars({size: [0.35, 20]});

  // Half a bucket of room at both ends, so the first and last bars are drawn whole.
  function paddedRange(u) {
    const xs = u.data[0];
    const half = xs.length > 1 ? (xs[1] - xs[0]) / 2 : 1800;
    return [xs[0] - half, xs[xs.length - 1] + half];
  }

  function timeChart(id, points, series, valueAxis) {
    const x = points.map((p) => Date.parse(p.t) / 1000);
    const columns = [x, ...series.map((s) => points.map(s.value))];
    draw(id, {
      series: [{}, ...series.map((s) => ({label: s.label, stroke: s.colour, width: 2, fill: s.fill, paths: s.paths,
                                          spanGaps: true, points: {show: !s.paths, size: 6}}))],
      axes: [{}, {size: 60, ...(valueAxis || {})}],
      scales: {x: {time: true, range: paddedRange}, y: valueAxis && valueAxis.range ? {range: valueAxis.range} : {}},
    }, columns, `time:${series.length}`);
  }

  function categoryChart(id, labels, series, emptyText) {
    if (!labels.length) { empty(id, emptyText); return; }
    const x = labels.map((_, i) => i);
    draw(id, {
      series: [{label: "", value: (u, i) => (i == null ? "" : labels[i])},
               ...series.map((s) => ({label: s.label, stroke: s.colour, fill: `${s.colour}cc`, paths: s.paths || bars(),
                                      points: {show: false}}))],
      scales: {x: {time: false, range: () => [-0.5, labels.length - 0.5]}},
      axes: [{splits: () => x, values: (u, splits) => splits.map((i) => labels[i] ?? "")}, {size: 60}],
    }, [x, ...series.map((s) => s.values)], `category:${labels.join("\u0000")}`);
  }

  const percent = {values: (u, ticks) => ticks.map((t) => `${Math.round(t * 100)} %`), range: [0, 1]};
  const runsAndFailures = [
    {label: "runs", colour: COLOURS.runs, fill: `${COLOURS.runs}55`, paths: bars(), value: (p) => p.runs},
    {label: "failed", colour: COLOURS.failed, fill: `${COLOURS.failed}cc`, paths: thinBars(), value: (p) => p.failed},
  ];
  const successRate = [{label: "success rate", colour: COLOURS.success, value: (p) => p.success_rate}];

  function renderOverview(data) {
    fillFields(data);
    const points = data.series.points;
    timeChart("chart-runs", points, runsAndFailures);
    timeChart("chart-success", points, successRate, percent);
    categoryChart("chart-cost-by-type", data.cost_by_type.map((r) => r.type || "(no type)"),
                  [{label: "USD", colour: COLOURS.cost, values: data.cost_by_type.map((r) => Number(r.cost_usd))}],
                  "No cost recorded today");
    const pools = data.resource_usage.pools;
    categoryChart("chart-queues", pools.map((p) => p.key),
                  [{label: "running", colour: COLOURS.running, values: pools.map((p) => p.running)},
                   {label: "queued", colour: COLOURS.queued, values: pools.map((p) => p.queued), paths: thinBars()}],
                  "No concurrency limit in force");
    fillTable("recent-failures", data.recent_failures, (r) => [
      link(`/dashboard/instances/${r.id}/`, shortId(r.id), r.id),
      link(`/dashboard/workflows/${encodeURIComponent(r.workflow)}/`, r.workflow),
      Object.assign(element("span", r.error || r.status), {className: "dac-error"}), FORMATS.time(r.finished_at),
    ], "No failure");
    fillTable("pending-approvals", data.pending_approvals.oldest, (r) => [
      link(`/admin/governance/escalation/${r.id}/change/`, r.title), r.level, r.workflow, FORMATS.time(r.created_at),
    ], "Nobody is waiting for a decision");
    fillTable("top-workflows", data.top_workflows, (r) => [
      link(`/dashboard/workflows/${encodeURIComponent(r.workflow)}/`, r.workflow), r.runs, r.completed, r.failed,
      FORMATS.usd(r.cost_usd),
    ], "No run in the last 24 h");
    fillTable("buckets", data.resource_usage.buckets, (r) => [r.name, r.tokens == null ? "–" : Number(r.tokens).toFixed(1),
                                                              r.limit, `${r.per} s`], "No rate limit configured");
    fillTable("token-quotas", data.resource_usage.tokens, (r) => [r.type, r.used_last_hour, r.share == null ? "–" : `${r.share} %`],
              "No token quota configured");
  }

  function renderWorkflow(data) {
    fillFields(data);
    const points = data.series.points;
    timeChart("chart-runs", points, runsAndFailures);
    timeChart("chart-success", points, successRate, percent);
    timeChart("chart-duration", points, [
      {label: "p50", colour: COLOURS.p50, value: (p) => (p.p50_ms == null ? null : p.p50_ms / 1000)},
      {label: "p95", colour: COLOURS.p95, value: (p) => (p.p95_ms == null ? null : p.p95_ms / 1000)},
    ]);
    timeChart("chart-cost", points, [{label: "USD", colour: COLOURS.cost, fill: `${COLOURS.cost}55`, paths: bars(),
                                      value: (p) => Number(p.cost_usd)}]);
  }

  function renderInstance(state) {
    const badge = document.getElementById("instance-status");
    badge.textContent = state.status;
    badge.dataset.status = state.status;
    document.getElementById("live-state").textContent = state.finished ? "finished" : "live";
    fillTable("instance-steps", state.steps, (r) => [r.step_id, r.status, r.attempts, FORMATS.time(r.started_at),
                                                     FORMATS.time(r.finished_at), r.duration_s == null ? "" : r.duration_s.toFixed(1)],
              "No step has run yet");
  }

  const RENDER = {overview: renderOverview, workflow: renderWorkflow, instance: renderInstance};

  function stamp(text) {
    const note = document.getElementById("dac-updated");
    if (note) note.textContent = text;
  }

  function poll(render, url, every) {
    setTimeout(async () => {
      try {
        const response = await fetch(url, {headers: {Accept: "application/json"}, credentials: "same-origin"});
        if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
        render(await response.json());
        stamp(`updated ${new Date().toLocaleTimeString()}`);
      } catch (error) {
        stamp(`could not refresh: ${error.message}`);
      }
      poll(render, url, every);
    }, every);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    const render = RENDER[page];
    const initial = document.getElementById("dac-data");
    if (!render || !initial) return;
    render(JSON.parse(initial.textContent));
    stamp(`updated ${new Date().toLocaleTimeString()}`);
    if (page === "instance") {
      // live-dag.js polls the instance; its answers fill the rest of the page.
      document.addEventListener("dac:instance", (event) => { render(event.detail); stamp(`updated ${new Date().toLocaleTimeString()}`); });
      document.addEventListener("dac:poll-error", (event) => stamp(`could not refresh: ${event.detail}`));
    } else {
      poll(render, document.body.dataset.url, Number(document.body.dataset.pollMs) || 5000);
    }
    window.addEventListener("resize", () => Object.entries(charts).forEach(([id, chart]) => {
      chart.plot.setSize(size(document.getElementById(id)));
    }));
  });
})();
