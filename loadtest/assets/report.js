// Draws the charts of Strata's HTML load-test report (loadtest/html.go)
// from the report's JSON, with uPlot. For scripts/check-report, which
// reads them in headless Chromium, it sets on the body element
// data-charts to the number of charts drawn, data-error to any uncaught
// exception's message, and data-height to the page's height.
"use strict";

window.onerror = function (msg) {
  document.body.dataset.error = String(msg);
};

(function () {
  const report = JSON.parse(document.getElementById("report-data").textContent);
  const HEIGHT = 240;
  const plots = [];

  // 75 → "1:15", 3725 → "1:02:05", 42 → "42s".
  function clock(s) {
    if (s == null) return "";
    s = Math.round(s);
    const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    const pad = (n) => String(n).padStart(2, "0");
    if (h > 0) return h + ":" + pad(m) + ":" + pad(sec);
    if (m > 0) return m + ":" + pad(sec);
    return sec + "s";
  }

  // 1500 → "1.5k", 2000000 → "2M", 0.25 → "0.25".
  function compact(v) {
    if (v == null) return "";
    const a = Math.abs(v);
    if (a >= 1e6) return +(v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return +(v / 1e3).toFixed(1) + "k";
    if (a >= 100) return String(Math.round(v));
    return String(+v.toFixed(a >= 10 ? 1 : a >= 1 ? 2 : 3));
  }

  // A legend value with its unit: at the cursor, or the phase's average
  // when the cursor is off the chart (the time column says which); "–"
  // for a second without one.
  const unit = (u) => (self, v, si, idx) => {
    if (idx == null) {
      const vs = self.data[si].filter((x) => x != null);
      v = vs.length ? vs.reduce((a, b) => a + b, 0) / vs.length : null;
    }
    return v == null ? "–" : compact(v) + (u ? " " + u : "");
  };
  const when = (self, v, si, idx) => (idx == null ? "averages" : "at " + clock(v));

  const line = (label, color, scale, u, extra) =>
    Object.assign({ label: label, stroke: color, width: 1.5, scale: scale, value: unit(u) }, extra);

  // Every y scale starts at 0, so that noise does not look like a trend;
  // floor is the least the top may be.
  const fromZero = (floor) => ({
    range: (self, min, max) => {
      const top = Math.max(max || 0, floor || 0);
      return top > 0 ? [0, uPlot.rangeNum(0, top, 0.08, true)[1]] : [0, 1];
    },
  });

  const yAxis = (scale, label, side, color) => ({
    scale: scale, label: label, side: side, size: 52, labelSize: 20, labelGap: 2,
    stroke: color || "#1f2328",
    values: (self, ticks) => ticks.map(compact),
    grid: side === 3 ? { stroke: "#eaeef2", width: 1 } : { show: false },
    ticks: { stroke: "#d1d9e0", width: 1, size: 4 },
  });

  const xAxis = {
    label: "time from the phase's start", labelSize: 20, labelGap: 0, size: 30,
    incrs: [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400],
    values: (self, ticks) => ticks.map(clock),
    grid: { stroke: "#eaeef2", width: 1 },
    ticks: { stroke: "#d1d9e0", width: 1, size: 4 },
  };

  // band shades [from, to) seconds, such as a spike, behind the lines.
  function band(from, to) {
    return (u) => {
      const x0 = u.valToPos(from, "x", true), x1 = u.valToPos(to, "x", true);
      const ctx = u.ctx;
      ctx.save();
      ctx.fillStyle = "rgba(207, 34, 46, 0.07)";
      ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
      ctx.restore();
    };
  }

  // chart adds a figure to box: a title, a note on what it shows, and a
  // uPlot of series (each {label, scale, ...}) over data[0], the seconds.
  function chart(box, phaseIndex, title, note, series, axes, scales, data, hooks) {
    const fig = document.createElement("figure");
    const cap = document.createElement("figcaption");
    cap.textContent = title + " ";
    const sub = document.createElement("span");
    sub.textContent = note;
    cap.append(sub);
    fig.append(cap);
    box.append(fig);
    const opts = {
      width: fig.clientWidth,
      height: HEIGHT,
      scales: Object.assign({ x: { time: false } }, scales),
      // An element, as uPlot would write "Value" for an empty label.
      series: [{ label: document.createElement("span"), value: when }].concat(series),
      axes: [xAxis].concat(axes),
      cursor: { sync: { key: "phase-" + phaseIndex } },
      legend: { live: true },
      hooks: hooks,
    };
    plots.push({ fig: fig, plot: new uPlot(opts, data, fig) });
  }

  const pick = (pts, f) => pts.map(f);
  const RED = "#cf222e", CPU = "#8250df", RSS = "#1b7c83";

  (report.phases || []).forEach(function (ph, i) {
    const box = document.querySelector('.charts[data-phase="' + i + '"]');
    const pts = ph.series || [];
    if (!box || pts.length === 0) return;
    const x = pick(pts, (p) => p.second);
    // Latencies are of the requests that completed in the second: none, no point.
    const lat = (f) => pick(pts, (p) => (p.requests > 0 ? f(p) : null));

    const m = ph.measures || {};
    const hooks = {};
    let spike = "";
    if (m.spike_start_second != null && m.spike_end_second != null) {
      hooks.drawClear = [band(m.spike_start_second, m.spike_end_second)];
      spike = " · spike shaded";
    }

    chart(box, i, "Latency", "ms, of the requests completed each second" + spike, [
      line("p50", "#4c78a8", "ms", "ms"),
      line("p90", "#54a24b", "ms", "ms"),
      line("p99", "#f58518", "ms", "ms", { width: 2 }),
      line("max", "#e45756", "ms", "ms", { width: 1, dash: [4, 3] }),
    ], [yAxis("ms", "ms", 3)], { ms: fromZero() }, [
      x, lat((p) => p.p50_ms), lat((p) => p.p90_ms), lat((p) => p.p99_ms), lat((p) => p.max_ms),
    ], hooks);

    // Errors share the scale of the rates they are part of.
    chart(box, i, "Throughput", "asked, achieved and failed requests per second" + spike, [
      line("asked", "#8c959f", "rps", "req/s", { width: 2, dash: [6, 4] }),
      line("achieved", "#4c78a8", "rps", "req/s", { width: 2 }),
      line("errors", RED, "rps", "req/s", { fill: "rgba(207, 34, 46, 0.15)" }),
    ], [yAxis("rps", "req/s", 3)], { rps: fromZero() }, [
      x, pick(pts, (p) => p.asked_rps), pick(pts, (p) => p.requests), pick(pts, (p) => p.errors),
    ], hooks);

    // The target's figures, when the plan gave a metrics URL; a failed
    // scrape is a gap.
    const has = (k) => pts.some((p) => p[k] != null);
    const cpu = has("target_cpu"), rss = has("target_rss_bytes");
    if (cpu || rss) {
      const series = [], axes = [], data = [x];
      if (cpu) {
        series.push(line("CPU", CPU, "cores", "cores", { width: 2 }));
        axes.push(yAxis("cores", "CPU cores", 3, rss ? CPU : null));
        data.push(pick(pts, (p) => p.target_cpu));
      }
      if (rss) {
        series.push(line("RSS", RSS, "MB", "MB", { width: 2 }));
        axes.push(yAxis("MB", "resident MB", cpu ? 1 : 3, cpu ? RSS : null));
        data.push(pick(pts, (p) => (p.target_rss_bytes == null ? null : p.target_rss_bytes / 1048576)));
      }
      chart(box, i, "Target CPU and memory", "from its /metrics; gaps where a scrape failed", series, axes,
        { cores: fromZero(), MB: fromZero() }, data, hooks);
    }
    if (has("target_goroutines")) {
      chart(box, i, "Target goroutines", "go_goroutines from its /metrics", [line("goroutines", "#9d755d", "n", "", { width: 2 })],
        [yAxis("n", "goroutines", 3)], { n: fromZero() }, [x, pick(pts, (p) => p.target_goroutines)], hooks);
    }
  });

  window.addEventListener("resize", function () {
    plots.forEach((p) => p.plot.setSize({ width: p.fig.clientWidth, height: HEIGHT }));
  });
  document.body.dataset.charts = String(plots.length);
  document.body.dataset.height = String(document.documentElement.scrollHeight);
})();
