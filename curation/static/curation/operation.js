// An operation's page: poll its progress; when it ends, show the result (a curation job's
// page, or this page reloaded with the result rendered by the server).
(function () {
  "use strict";
  var root = document.getElementById("operation");
  if (!root || root.getAttribute("data-final") === "1") { return; }
  var url = root.getAttribute("data-progress-url");
  var delay = 1000;

  function setText(id, value) {
    var el = document.getElementById(id);
    if (el) { el.textContent = String(value); }
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        setText("op-state", data.state_label);
        setText("op-done", data.done);
        setText("op-total", data.total);
        var bar = document.getElementById("op-bar");
        if (bar) { bar.max = data.total || 1; bar.value = data.done; }
        if (!data.final) { window.setTimeout(poll, delay); return; }
        if (data.state === "succeeded" && data.job_url && root.getAttribute("data-kind") === "curate") {
          window.location.assign(data.job_url);
        } else {
          window.location.reload();
        }
      })
      .catch(function (err) {
        var el = document.getElementById("op-poll-error");
        if (el) { el.hidden = false; el.textContent = "Progress unavailable (" + err.message + "); retrying."; }
        window.setTimeout(poll, delay * 3);
      });
  }
  window.setTimeout(poll, delay);
})();
