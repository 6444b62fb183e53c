/* govshare console: charts, item rows, confirmations. No inline scripts in the pages. */
(function () {
  "use strict";

  var PALETTE = ["#1f5fa8", "#c23531", "#2f9e72", "#e39b23", "#6c5bb8", "#3aa0c8", "#8a6d3b", "#d4577b"];

  function chartOption(spec) {
    var base = {
      color: spec.colors || PALETTE,
      textStyle: { fontFamily: '"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif' },
      tooltip: { trigger: spec.type === "pie" ? "item" : "axis" },
      animationDuration: 300
    };
    if (spec.type === "pie") {
      base.legend = { bottom: 0, type: "scroll" };
      base.series = [{
        type: "pie", radius: ["40%", "68%"], center: ["50%", "45%"],
        label: { formatter: "{b}\n{c}（{d}%）" },
        data: spec.labels.map(function (l, i) { return { name: l, value: spec.values[i] }; })
      }];
      return base;
    }
    if (spec.type === "bar") {  // horizontal bars, largest on top
      base.grid = { left: 8, right: 40, top: 8, bottom: 8, containLabel: true };
      base.xAxis = { type: "value", minInterval: 1 };
      base.yAxis = { type: "category", data: spec.labels.slice().reverse(), axisTick: { show: false } };
      base.series = [{ type: "bar", data: spec.values.slice().reverse(), barMaxWidth: 18,
                       label: { show: true, position: "right" } }];
      return base;
    }
    base.grid = { left: 8, right: 8, top: 24, bottom: 8, containLabel: true };
    base.xAxis = { type: "category", data: spec.labels, axisLabel: { interval: 0, rotate: 30 } };
    base.yAxis = { type: "value", minInterval: 1 };
    base.series = [{ type: "bar", data: spec.values, barMaxWidth: 28, label: { show: true, position: "top" },
                     itemStyle: { color: "#1f5fa8" } }];
    return base;
  }

  // A chart of nothing but zeros would draw an axis from 0 to 1: say so instead.
  function noData(values) {
    return !values.length || values.every(function (v) { return !v; });
  }

  function showEmpty(el) {
    el.classList.add("chart-empty", "empty");
    el.textContent = "暂无数据";
    el.setAttribute("data-chart-ready", "1");
  }
  window.govshareCharts = { noData: noData, showEmpty: showEmpty };

  function initCharts(root) {
    if (typeof window.echarts === "undefined") return;
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-chart"));
      if (!source || el.getAttribute("data-chart-ready")) return;
      var spec = JSON.parse(source.textContent);
      if (noData(spec.values)) { showEmpty(el); return; }
      if (spec.type === "bar") el.style.height = Math.max(240, spec.labels.length * 26 + 24) + "px";
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(chartOption(spec));
      el.setAttribute("data-chart-ready", "1");
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  function renumber(tbody) {
    tbody.querySelectorAll("tr").forEach(function (tr, i) {
      var cell = tr.querySelector("[data-row-number]");
      if (cell) cell.textContent = String(i + 1);
    });
  }

  document.addEventListener("click", function (event) {
    var add = event.target.closest("[data-add-row]");
    if (add) {
      var tmpl = document.getElementById(add.getAttribute("data-template"));
      var tbody = document.getElementById(add.getAttribute("data-add-row"));
      tbody.appendChild(tmpl.content.cloneNode(true));
      renumber(tbody);
      var rows = tbody.querySelectorAll("tr");
      var first = rows[rows.length - 1].querySelector("input");
      if (first) first.focus();
      return;
    }
    var remove = event.target.closest("[data-remove-row]");
    if (remove) {
      var row = remove.closest("tr");
      var body = row.parentNode;
      if (body.querySelectorAll("tr").length > 1) {
        row.remove();
      } else {
        row.querySelectorAll("input, textarea").forEach(function (i) { i.value = ""; });
      }
      renumber(body);
    }
  });

  document.addEventListener("submit", function (event) {
    var message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  document.addEventListener("DOMContentLoaded", function () { initCharts(document); });
  document.addEventListener("htmx:afterSettle", function (e) { initCharts(e.target); });
})();

/* Exchange console: charts of several series over one axis, drawn from
   <div data-series-chart="id"> and <script type="application/json" id="id">.
   spec.type "line" draws lines, "stack" stacked columns, anything else grouped columns. */
(function () {
  "use strict";

  var COLORS = ["#1f5fa8", "#2f9e72", "#c23531", "#e39b23"];

  function seriesOption(spec) {
    var line = spec.type === "line";
    return {
      color: spec.colors || COLORS,
      textStyle: { fontFamily: '"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif' },
      tooltip: { trigger: "axis" },
      legend: { top: 0 },
      grid: { left: 8, right: 16, top: 32, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: spec.labels, boundaryGap: !line },
      yAxis: { type: "value", minInterval: 1 },
      animationDuration: 300,
      series: spec.series.map(function (s) {
        var out = { name: s.name, type: line ? "line" : "bar", data: s.values };
        if (line) {
          out.symbolSize = 5;
          out.areaStyle = { opacity: 0.08 };
        } else {
          out.barMaxWidth = 24;
          if (spec.type === "stack") out.stack = "total";
        }
        return out;
      })
    };
  }

  function initSeriesCharts(root) {
    if (typeof window.echarts === "undefined") return;
    root.querySelectorAll("[data-series-chart]").forEach(function (el) {
      var source = document.getElementById(el.getAttribute("data-series-chart"));
      if (!source || el.getAttribute("data-chart-ready")) return;
      var spec = JSON.parse(source.textContent);
      var charts = window.govshareCharts;
      if (spec.series.every(function (s) { return charts.noData(s.values); })) {
        charts.showEmpty(el);
        return;
      }
      var chart = window.echarts.init(el, null, { renderer: "svg" });
      chart.setOption(seriesOption(spec));
      el.setAttribute("data-chart-ready", "1");
      window.addEventListener("resize", function () { chart.resize(); });
    });
  }

  document.addEventListener("DOMContentLoaded", function () { initSeriesCharts(document); });
  document.addEventListener("htmx:afterSettle", function (e) { initSeriesCharts(e.target); });
})();

/* Comparison runs: the job page's progress bar follows a running run by polling its
   small JSON endpoint, and the page reloads once the run ended (its counts and cases). */
(function () {
  "use strict";

  function follow(el) {
    var url = el.getAttribute("data-run-progress");
    var bar = el.querySelector("progress");
    var percent = el.querySelector("[data-run-percent]");
    var phase = el.querySelector("[data-run-phase]");
    var status = el.querySelector("[data-run-status]");
    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
        .then(function (run) {
          var shown = Math.round(run.progress * 100) + "%";
          if (bar) { bar.value = run.progress; bar.textContent = shown; }
          if (percent) percent.textContent = shown;
          if (phase && run.phase) phase.textContent = run.phase;
          if (status) status.textContent = run.label;
          if (run.finished) {
            // A URL of its own, so the page loads again even when it was opened plainly.
            window.location.assign(window.location.pathname + "?done=finished");
            return;
          }
          window.setTimeout(tick, 1000);
        })
        .catch(function () { window.setTimeout(tick, 5000); });  // a hiccup: look again later
    }
    window.setTimeout(tick, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-run-progress]").forEach(follow);
  });
})();
