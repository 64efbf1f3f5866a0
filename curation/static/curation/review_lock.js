// A note's review page: claim the review lock by POST when the page opens, renew it while the
// page stays open, and offer to take it over once another moderator's claim has lapsed. The
// decision forms are enabled only while this moderator holds the lock.
(function () {
  "use strict";
  var box = document.getElementById("lock");
  if (!box || !box.getAttribute("data-lock-url")) { return; }
  var url = box.getAttribute("data-lock-url");
  var token = box.getAttribute("data-csrf");
  var text = document.getElementById("lock-text");
  var takeover = document.getElementById("lock-takeover");
  var release = document.getElementById("lock-release");
  var timer = null;

  function setForms(enabled) {
    document.querySelectorAll("fieldset.rv-decide").forEach(function (fs) { fs.disabled = !enabled; });
  }

  function show(state, seconds) {
    box.classList.remove("mine", "other", "free");
    if (state.held) {
      box.classList.add("mine");
      text.textContent = "You are reviewing this note until " + state.until +
        " (renewed every minute while this page is open).";
      setForms(true);
      takeover.hidden = true;
      if (release) { release.hidden = false; }
      schedule(Math.max(5, Math.min(60, seconds / 3)));
    } else if (!state.free) {
      box.classList.add("other");
      text.textContent = state.holder + " is reviewing this note until " + state.until +
        ". You can read it; the decision forms are disabled until then.";
      setForms(false);
      if (release) { release.hidden = true; }
      var left = (Date.parse(state.expires_at) - Date.now()) / 1000;
      takeover.hidden = true;
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { takeover.hidden = false; }, Math.max(0, left * 1000 + 500));
    }
  }

  function schedule(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(claim, delay * 1000);
  }

  function claim() {
    fetch(url, { method: "POST", credentials: "same-origin",
                 headers: { "X-CSRFToken": token, "Accept": "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (state) { show(state, state.seconds || 600); })
      .catch(function () { schedule(15); });
  }

  takeover.addEventListener("click", function (event) { event.preventDefault(); claim(); });
  claim();
})();
