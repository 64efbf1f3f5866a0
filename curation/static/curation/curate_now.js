// Curate now: poll the one-note job's status and show its suggestions the moment they are
// stored, with approve/reject buttons for moderators (built from text, never HTML).
(function () {
  "use strict";
  var root = document.getElementById("curate-now");
  if (!root || root.getAttribute("data-final") === "1") { return; }
  var url = root.getAttribute("data-status-url");
  var delay = 1000;

  function byId(id) { return document.getElementById(id); }

  function setText(id, value) {
    var el = byId(id);
    if (el) { el.textContent = String(value); }
  }

  function element(tag, className, text) {
    var el = document.createElement(tag);
    if (className) { el.className = className; }
    if (text !== undefined) { el.textContent = String(text); }
    return el;
  }

  function decideForm(s) {
    var form = element("form", "cn-decide");
    form.method = "post";
    form.action = root.getAttribute("data-decide-url");
    var csrf = element("input");
    csrf.type = "hidden";
    csrf.name = "csrfmiddlewaretoken";
    csrf.value = root.getAttribute("data-csrf");
    form.appendChild(csrf);
    [["approve", "Approve", "vc-approve"], ["reject", "Reject", "vc-reject"]].forEach(function (b) {
      var button = element("button", b[2], b[1]);
      button.type = "submit";
      button.name = "decide";
      button.value = s.id + ":pending:" + b[0];
      form.appendChild(button);
      form.appendChild(document.createTextNode(" "));
    });
    return form;
  }

  function card(s) {
    var box = element("div", "cn-suggestion");
    box.setAttribute("data-field", s.field);
    box.setAttribute("data-state", s.state);
    var h = element("h3", "", s.field_label + " ");
    h.appendChild(element("span", "vc-muted", "\u00b7 " + s.state_label));
    box.appendChild(h);
    var value = element("p", "cn-value");
    if (s.values.length) {
      s.values.forEach(function (v) {
        value.appendChild(element("span", "vc-chip", v));
        value.appendChild(document.createTextNode(" "));
      });
    } else {
      value.textContent = s.text || "(nothing suggested)";
    }
    box.appendChild(value);
    if (root.getAttribute("data-can-review") === "1" && s.state === "pending") {
      box.appendChild(decideForm(s));
    }
    return box;
  }

  function render(data) {
    setText("cn-state", data.state_label);
    if (data.job_id) {
      var link = byId("cn-job-link");
      link.href = link.getAttribute("data-href").replace(/\/0\/$/, "/" + data.job_id + "/");
      setText("cn-job-id", data.job_id);
      byId("cn-job").hidden = false;
    }
    if (data.cost_text) { setText("cn-cost", data.cost_text); byId("cn-cost-box").hidden = false; }
    var error = byId("cn-error");
    error.hidden = !data.error;
    error.textContent = data.error || "";
    var list = byId("cn-suggestions");
    var cards = document.createDocumentFragment();
    (data.suggestions || []).forEach(function (s) { cards.appendChild(card(s)); });
    if (!data.suggestions.length) {
      cards.appendChild(element("p", "vc-muted", data.final ? "No suggestions." : "Waiting for the model\u2026"));
    }
    list.replaceChildren(cards);
    byId("cn-review").hidden = !data.suggestions.length;
    byId("cn-waiting").hidden = !!data.final;
    root.setAttribute("data-final", data.final ? "1" : "0");
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        byId("cn-poll-error").hidden = true;
        render(data);
        if (!data.final) { window.setTimeout(poll, delay); }
      })
      .catch(function (err) {
        var el = byId("cn-poll-error");
        el.hidden = false;
        el.textContent = "Progress unavailable (" + err.message + "); retrying.";
        window.setTimeout(poll, delay * 3);
      });
  }
  window.setTimeout(poll, delay);
})();
