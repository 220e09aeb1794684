/* evalhub page behaviour. The Content-Security-Policy allows scripts only from our own origin, so templates
 * carry no inline script or on…= handler: they mark elements with data-* attributes and this file acts on them.
 * Loaded at the end of <body> by base.html (after Bootstrap and, on the dashboard, Chart.js). */
(function () {
  "use strict";

  // <form data-confirm="…"> or <button data-confirm="…">: ask before submitting.
  document.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    var message = (submitter && submitter.getAttribute("data-confirm")) || event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);

  // A form is sent once: a second press while the page waits for the answer (a double click) is not sent. The
  // server gives one result either way, but the browser would show the answer to the second press ("已登记，请勿
  // 重复", a 409) in place of the first's. POST forms only (a search may be sent again); after 15 s, or when the
  // page comes back from the back/forward cache, the form may be sent again (an export leaves the page as it was).
  // Bubbling, after the confirmation above: a form whose confirmation was dismissed was not sent.
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || (form.getAttribute("method") || "get").toLowerCase() !== "post") { return; }
    if (form.dataset.sending) {
      event.preventDefault();
      return;
    }
    form.dataset.sending = "1";
    window.setTimeout(function () { delete form.dataset.sending; }, 15000);
  });
  window.addEventListener("pageshow", function (event) {
    if (event.persisted) {
      document.querySelectorAll("form[data-sending]").forEach(function (form) { delete form.dataset.sending; });
    }
  });

  // <a data-back href="/fallback">: back in history when there is one, else follow the link.
  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-back]");
    if (link && window.history.length > 1) {
      event.preventDefault();
      window.history.back();
    }
  });

  // Progress bars: <div class="progress-bar" data-bar-width="42.5"> (a percentage). Set through the CSSOM,
  // which the policy allows, instead of a style="width: …" attribute, which it forbids.
  function setBar(el, value) {
    var pct = Math.max(0, Math.min(100, parseFloat(value) || 0));
    el.style.width = pct + "%";
  }
  document.querySelectorAll("[data-bar-width]").forEach(function (el) {
    setBar(el, el.getAttribute("data-bar-width"));
  });

  // Background job page: <div id="job-poll" data-poll-url="…"> while the job runs.
  var poller = document.getElementById("job-poll");
  if (poller) {
    var url = poller.getAttribute("data-poll-url");
    (function poll() {
      fetch(url, {credentials: "same-origin"})
        .then(function (r) { return r.json(); }).then(function (j) {
          document.getElementById("job-status").textContent = j.status_label;
          var bar = document.getElementById("job-bar");
          setBar(bar, j.percent);
          bar.textContent = j.percent + "%";
          document.getElementById("job-message").textContent = j.message;
          if (j.finished) { window.location.reload(); } else { setTimeout(poll, 1000); }
        }).catch(function () { setTimeout(poll, 3000); });
    })();
  }

  // Procurement form: show only the fieldsets of the chosen method (fieldset[data-methods="a b"]).
  var methodSelect = document.querySelector('#procure-form select[name="method"]');
  if (methodSelect) {
    var syncMethod = function () {
      document.querySelectorAll("#procure-form fieldset[data-methods]").forEach(function (fs) {
        var on = fs.dataset.methods.split(" ").indexOf(methodSelect.value) >= 0;
        fs.hidden = !on;
        fs.disabled = !on;
      });
    };
    methodSelect.addEventListener("change", syncMethod);
    syncMethod();
  }

  // Report submission: "增加一行" copies the last indicator row with the next index.
  var addRow = document.getElementById("add-indicator-row");
  if (addRow) {
    // the form takes at most data-max-rows rows (more are refused): the button stops there
    var maxRows = parseInt(addRow.getAttribute("data-max-rows") || "0", 10);
    var atLimit = function (count) {
      if (maxRows && count >= maxRows) {
        addRow.disabled = true;
        addRow.title = "评分表最多 " + maxRows + " 行";
      }
    };
    atLimit(document.querySelectorAll("#indicator-body tr.indicator-row").length);
    addRow.addEventListener("click", function () {
      var body = document.getElementById("indicator-body");
      var rows = body.querySelectorAll("tr.indicator-row");
      if (maxRows && rows.length >= maxRows) { atLimit(rows.length); return; }
      var last = rows[rows.length - 1];
      var n = rows.length;
      var clone = last.cloneNode(true);
      clone.classList.remove("table-danger");
      clone.querySelectorAll(".invalid-feedback").forEach(function (el) { el.remove(); });
      clone.querySelector("td").textContent = String(n + 1);
      clone.querySelectorAll("input, select").forEach(function (el) {
        el.name = el.name.replace(/indicators-\d+-/, "indicators-" + n + "-");
        el.id = el.name;
        el.setAttribute("aria-label", (el.getAttribute("aria-label") || "").replace(/第 \d+ 行/, "第 " + (n + 1) + " 行"));
        if (el.tagName === "SELECT") { el.selectedIndex = 0; } else { el.value = ""; }
      });
      body.appendChild(clone);
      atLimit(n + 1);
    });
  }

  // <input list="…" data-suggest-url="…?year=…">: as one types (and on first focus), the names the server suggests
  // for the text (JSON {firms: [{name}]}, ``&q=``) fill the input's <datalist>; the form sends the text itself.
  document.querySelectorAll("input[data-suggest-url]").forEach(function (input) {
    var timer = null, asked = null;
    function suggest() {
      var text = input.value.trim();
      if (text === asked || !input.list) { return; }
      asked = text;
      fetch(input.getAttribute("data-suggest-url") + "&q=" + encodeURIComponent(text), {credentials: "same-origin"})
        .then(function (r) { return r.ok ? r.json() : {firms: []}; }).then(function (j) {
          if (text !== asked) { return; }  // a later text was asked meanwhile
          var options = (j.firms || []).map(function (f) {
            var option = document.createElement("option");
            option.value = f.name;
            return option;
          });
          input.list.replaceChildren.apply(input.list, options);
        }).catch(function () { asked = null; });
    }
    input.addEventListener("focus", suggest);
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(suggest, 200);
    });
  });

  // Dashboard: credit grades per year, data from <script type="application/json" id="credit-chart-data">.
  var chartData = document.getElementById("credit-chart-data");
  var chartCanvas = document.getElementById("credit-grade-chart");
  if (chartData && chartCanvas && window.Chart) {
    var data = JSON.parse(chartData.textContent);
    var colours = {A: "#198754", B: "#0d6efd", C: "#ffc107", D: "#dc3545"};
    new window.Chart(chartCanvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (d) {
          return {label: d.label, data: d.data, backgroundColor: colours[d.grade]};
        })
      },
      options: {
        responsive: true,
        scales: {y: {beginAtZero: true, ticks: {precision: 0}, title: {display: true, text: "机构数"}}},
        plugins: {legend: {position: "bottom"}}
      }
    });
  }
})();
