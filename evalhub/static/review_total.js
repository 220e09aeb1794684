/* The expert's running total on the review form (issue 13). Only a guide while typing: the server adds up
   the saved scores when the review is submitted, and that total is the one recorded. Works in hundredths
   so 0.1 + 0.2 shows as 0.30. */
(function () {
  "use strict";
  var box = document.querySelector("[data-running-total]");
  if (!box) { return; }
  var form = box.closest("form") || document;
  var inputs = form.querySelectorAll("input[data-score-max]");
  var out = box.querySelector("[data-total]");
  var note = box.querySelector("[data-total-note]");

  function hundredths(text) {
    var t = (text || "").trim();
    if (t === "") { return 0; }
    if (!/^\d+(\.\d{1,2})?$/.test(t)) { return null; }
    return Math.round(parseFloat(t) * 100);
  }

  function update() {
    var sum = 0, bad = 0, blank = 0;
    inputs.forEach(function (input) {
      var v = hundredths(input.value);
      var max = hundredths(input.getAttribute("data-score-max"));
      if (input.value.trim() === "") { blank += 1; }
      if (v === null || (max !== null && v > max)) {
        bad += 1;
        input.classList.add("is-invalid");
        return;
      }
      input.classList.remove("is-invalid");
      sum += v;
    });
    out.textContent = (sum / 100).toFixed(2);
    var parts = [];
    if (blank) { parts.push(blank + " 项未打分"); }
    if (bad) { parts.push(bad + " 项分值无效或超过满分，未计入"); }
    note.textContent = parts.length ? "（" + parts.join("；") + "）" : "";
  }

  inputs.forEach(function (input) { input.addEventListener("input", update); });
  update();
})();
