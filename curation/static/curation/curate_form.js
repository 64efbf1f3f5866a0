// The curate form: show the estimate for the mode chosen (the server computed each choice).
(function () {
  "use strict";
  var form = document.getElementById("curate-form");
  var box = document.getElementById("curate-estimate");
  if (!form || !box) { return; }
  var estimates = JSON.parse(box.getAttribute("data-estimates") || "{}");

  function update() {
    var mode = form.querySelector("select[name=mode]");
    var urgent = form.querySelector("input[name=urgent]");
    var key = (mode ? mode.value : "auto") + ":" + (urgent && urgent.checked ? "1" : "0");
    var found = estimates[key];
    if (!found) { return; }
    if (found.cost) { document.getElementById("estimate-cost").textContent = found.cost; }
    document.getElementById("estimate-mode").textContent = found.mode;
  }
  form.addEventListener("change", update);
  update();
})();
