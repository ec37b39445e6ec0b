// Small enhancements of the planner's page; everything works without them.
// Build a plan: a budget slider that re-plans as it moves (a preview, nothing is kept).
(function () {
  "use strict";
  var form = document.getElementById("plan-form");
  if (!form) { return; }
  var budget = document.getElementById("budget");
  var slider = document.getElementById("budget-slider");
  var preview = document.getElementById("preview");
  if (!budget || !slider || !preview) { return; }
  slider.hidden = false;
  var timer = null, pending = null;
  function refresh() {
    var data = new FormData(form);
    data.delete("csrf");
    var query = new URLSearchParams(data).toString();
    if (pending) { pending.abort(); }
    pending = new AbortController();
    fetch(form.action.replace(/\/plans$/, "/plan/preview") + "?" + query,
          { credentials: "same-origin", signal: pending.signal, headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : ""; })
      .then(function (html) { preview.innerHTML = html; })
      .catch(function () {});
  }
  function later() { clearTimeout(timer); timer = setTimeout(refresh, 250); }
  slider.addEventListener("input", function () { budget.value = slider.value; later(); });
  budget.addEventListener("input", function () {
    var v = parseFloat(budget.value.replace(/[ ,€]/g, ""));
    if (isFinite(v)) { slider.value = v; later(); }
  });
})();
