// Live job progress: poll the JSON endpoint and update counts in place (text only, never HTML).
(function () {
  "use strict";
  var root = document.getElementById("job");
  if (!root) { return; }
  var url = root.getAttribute("data-progress-url");
  var delay = 2000;

  function setText(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = String(value); }
  }

  function render(data) {
    setText("job-state", data.state_label);
    setText("job-cost", data.cost_text);
    setText("job-mode", data.mode_label);
    setText("job-pending", data.pending);
    setText("job-done", data.done);
    setText("job-total", data.total);
    var bar = document.getElementById("job-bar");
    if (bar) { bar.max = data.total || 1; bar.value = data.done; }
    var cells = document.querySelectorAll("#job-counts [data-state]");
    for (var i = 0; i < cells.length; i++) {
      var state = cells[i].getAttribute("data-state");
      cells[i].textContent = String(data.counts[state] || 0);
    }
    renderItems(data.items || []);
    root.setAttribute("data-final", data.final ? "1" : "0");
    var reason = document.getElementById("job-error-reason");
    if (reason && data.error) {
      reason.hidden = false;
      reason.textContent = data.error + (data.request_id ? " (request-id " + data.request_id + ")" : "");
    }
    if (data.final && root.getAttribute("data-reload-when-final") === "1") {
      // A consolidation job's proposed merges are listed by the page itself: load it again.
      window.location.reload();
      return;
    }
    if (data.final) {
      // An ended job can no longer be canceled: the button goes with the last update.
      var cancel = document.querySelector("form.job-cancel");
      if (cancel) { cancel.remove(); }
    }
  }

  // Per-item rows, rebuilt from text (never HTML): items end one by one in parallel mode.
  function renderItems(items) {
    var body = document.querySelector("#job-items tbody");
    if (!body) { return; }
    var rows = document.createDocumentFragment();
    items.forEach(function (item) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-item-state", item.state);
      [item.note, item.state_label, item.attempts, item.cost_text, item.error].forEach(function (value) {
        var td = document.createElement("td");
        td.textContent = String(value);
        tr.appendChild(td);
      });
      rows.appendChild(tr);
    });
    body.replaceChildren(rows);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        render(data);
        if (!data.final) { window.setTimeout(poll, delay); }
      })
      .catch(function (err) {
        var el = document.getElementById("job-error");
        if (el) { el.hidden = false; el.textContent = "Progress unavailable (" + err.message + "); retrying."; }
        window.setTimeout(poll, delay * 3);
      });
  }

  if (root.getAttribute("data-final") !== "1") { window.setTimeout(poll, delay); }
})();
