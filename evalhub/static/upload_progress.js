/* Upload progress for <form data-upload-progress> (opt-in: other forms are left alone).
 *
 * The form is sent with XMLHttpRequest so that a <progress> bar can show how much of a several-MB file has
 * gone. The browser must then end exactly where a normal submission would have taken it:
 *  - the server answered with a redirect (the usual "done"): the XHR follows it with the header
 *    X-Upload-Progress, which the server answers with an empty 204 and X-Upload-Landing instead of the page
 *    (so the flash message is not used up); we then load xhr.responseURL in the window — a real navigation
 *    that shows the page and its flash message;
 *  - the server answered with a page (422 with the form's errors, or a page shown once): that page replaces
 *    this document, as a normal submission's response would have.
 * A network failure falls back to the normal submission. CSP: no inline script or style; the bar's width is
 * the <progress> element's own value. */
(function () {
  "use strict";

  var HEADER = "X-Upload-Progress";

  function progressBox(form) {
    var box = form.querySelector("[data-upload-progress-box]");
    if (!box) {
      box = document.createElement("div");
      box.setAttribute("data-upload-progress-box", "");
      box.className = "upload-progress d-flex align-items-center gap-2 mt-2 small";
      box.setAttribute("role", "status");
      var label = document.createElement("span");
      label.textContent = "正在上传";
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.className = "flex-grow-1";
      bar.setAttribute("data-testid", "upload-progress");
      bar.setAttribute("aria-label", "上传进度");
      var pct = document.createElement("span");
      pct.className = "mono";
      pct.setAttribute("data-testid", "upload-percent");
      pct.textContent = "0%";
      box.appendChild(label);
      box.appendChild(bar);
      box.appendChild(pct);
      form.appendChild(box);
    }
    return {
      box: box,
      set: function (percent, text) {
        box.querySelector("progress").value = percent;
        box.querySelector("[data-testid=upload-percent]").textContent = percent + "%";
        if (text) { box.firstChild.textContent = text; }
      }
    };
  }

  function showResponse(xhr) {
    // The response page takes the place of this one, under the URL a normal submission would show.
    if (xhr.responseURL && xhr.responseURL !== window.location.href) {
      window.history.replaceState(null, "", xhr.responseURL);
    }
    document.open();
    document.write(xhr.responseText);
    document.close();
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || !form.matches || !form.matches("form[data-upload-progress]")) { return; }
    if (!window.XMLHttpRequest || !window.FormData || form.dataset.uploading) { return; }
    event.preventDefault();

    var data = new FormData(form);
    var submitter = event.submitter;
    if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
    var buttons = form.querySelectorAll("button[type=submit], input[type=submit], button:not([type])");
    buttons.forEach(function (b) { b.disabled = true; });
    form.dataset.uploading = "1";
    var progress = progressBox(form);

    var xhr = new XMLHttpRequest();
    xhr.open((form.getAttribute("method") || "post").toUpperCase(), form.action);
    xhr.setRequestHeader(HEADER, "1");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable && e.total > 0) {
        progress.set(Math.min(100, Math.round(e.loaded * 100 / e.total)));
      }
    });
    xhr.upload.addEventListener("load", function () { progress.set(100, "上传完成，正在处理"); });
    xhr.addEventListener("load", function () {
      if (xhr.getResponseHeader("X-Upload-Landing")) {
        window.location.assign(xhr.responseURL);
      } else {
        showResponse(xhr);
      }
    });
    xhr.addEventListener("error", function () {
      // Could not reach the server this way: let the browser try the ordinary submission.
      delete form.dataset.uploading;
      buttons.forEach(function (b) { b.disabled = false; });
      progress.box.remove();
      form.submit();
    });
    xhr.send(data);
  });
})();
