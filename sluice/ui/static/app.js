// Sluice UI: auto-refresh while a run is going, live step logs, Plotly charts. No other dependency.
(function () {
  "use strict";
  var body = document.body;
  var refresh = parseInt(body.getAttribute("data-refresh") || "0", 10);
  if (refresh > 0) {
    setTimeout(function () { window.location.reload(); }, refresh * 1000);
  }
  // Live log tails of running steps.
  document.querySelectorAll("pre[data-live-log]").forEach(function (pre) {
    var url = pre.getAttribute("data-live-log");
    function poll() {
      fetch(url, { cache: "no-store", credentials: "same-origin" }).then(function (r) {
        var status = r.headers.get("X-Step-Status");
        return r.text().then(function (text) {
          pre.textContent = text || "(empty log)";
          pre.scrollTop = pre.scrollHeight;
          if (status === "running") { setTimeout(poll, 1500); }
        });
      }).catch(function () { setTimeout(poll, 5000); });
    }
    poll();
  });
  // Charts: each .sl-plot carries its Plotly figure as JSON.
  if (window.Plotly) {
    document.querySelectorAll(".sl-plot[data-figure]").forEach(function (el) {
      var fig = JSON.parse(el.getAttribute("data-figure"));
      window.Plotly.newPlot(el, fig.data, fig.layout, { displaylogo: false, responsive: true });
      el.setAttribute("data-rendered", "1");
    });
  }
  // Compare: at least two runs.
  var form = document.getElementById("compare-form");
  if (form) {
    form.addEventListener("submit", function (ev) {
      var n = form.querySelectorAll("input[name=run]:checked").length;
      var target = ev.submitter ? ev.submitter.id : "";
      if (n === 0 || (target === "compare-button" && n < 2)) {
        ev.preventDefault();
        alert(target === "compare-button" ? "Select two runs or more to compare." : "Select runs first.");
      }
    });
  }
})();
