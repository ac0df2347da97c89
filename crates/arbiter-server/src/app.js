// Arbiter annotation UI: keyboard shortcuts, local times with countdowns, and the import
// form's file reader. Every page works without it.
(function () {
  "use strict";
  function minutesText(ms) {
    var left = Math.max(0, Math.round(ms / 60000));
    if (left >= 60) { return Math.floor(left / 60) + " h " + (left % 60) + " min"; }
    return Math.max(1, left) + " min";
  }
  // A <time data-countdown> gains the reader's local date-time beside the UTC one, and its
  // countdown ticks; at zero it offers to check again.
  function localTimes() {
    var times = document.querySelectorAll("time[data-countdown]");
    Array.prototype.forEach.call(times, function (t) {
      var at = new Date(Number(t.getAttribute("data-countdown")));
      var local = at.toLocaleString(undefined, {
        weekday: "short", day: "numeric", month: "short", year: "numeric",
        hour: "2-digit", minute: "2-digit", timeZoneName: "short"
      });
      // A reader whose clock is on UTC already reads their own time.
      if (at.getTimezoneOffset() === 0) { return; }
      if (t.getAttribute("data-utc") === null) { t.setAttribute("data-utc", t.textContent); }
      t.textContent = local + ", your time (" + t.getAttribute("data-utc") + ")";
    });
    function tick() {
      var spans = document.querySelectorAll(".countdown[data-until]");
      Array.prototype.forEach.call(spans, function (s) {
        var left = Number(s.getAttribute("data-until")) - Date.now();
        if (left > 0) {
          s.textContent = "(in about " + minutesText(left) + ")";
        } else {
          s.textContent = "(now: check again)";
        }
      });
    }
    tick();
    if (times.length) { window.setInterval(tick, 15000); }
  }
  // The undo button goes away when its window closes.
  function undoWindow() {
    var form = document.getElementById("undo-form");
    if (!form) { return; }
    var left = Number(form.getAttribute("data-until")) - Date.now();
    window.setTimeout(function () { form.remove(); }, Math.max(0, left));
  }
  function importForm() {
    // A chosen file is read into the text box, its name kept for errors.
    var file = document.getElementById("item-file");
    if (!file) { return; }
    file.addEventListener("change", function () {
      var f = file.files && file.files[0];
      if (!f) { return; }
      document.getElementById("item-file-name").value = f.name;
      var format = document.getElementById("format");
      if (/\.csv$/i.test(f.name)) { format.value = "csv"; } else { format.value = "jsonl"; }
      var reader = new FileReader();
      reader.onload = function () { document.getElementById("items-body").value = reader.result; };
      reader.readAsText(f);
    });
  }
  function follow(id) {
    var link = document.getElementById(id);
    if (link) { window.location.assign(link.href); return true; }
    return false;
  }
  function shortcuts() {
    var form = document.getElementById("label-form");
    var undo = document.getElementById("undo");
    if (!form && !undo) { return; }
    document.addEventListener("keydown", function (event) {
      var target = event.target || {};
      var tag = target.tagName || "";
      if (tag === "TEXTAREA" || tag === "SELECT" || (tag === "INPUT" && target.type === "text")) { return; }
      if (event.ctrlKey || event.metaKey || event.altKey) { return; }
      if (form && event.key >= "1" && event.key <= "9") {
        var input = form.querySelector("input[data-key='" + event.key + "']");
        if (input && !input.disabled) {
          if (input.type === "checkbox") { input.checked = !input.checked; } else { input.checked = true; }
          input.focus();
          event.preventDefault();
        }
      } else if (form && event.key === "s") {
        document.getElementById("skip").click();
        event.preventDefault();
      } else if (event.key === "v") {
        if (follow("reveal")) { event.preventDefault(); }
      } else if (event.key === "u") {
        var button = document.getElementById("undo");
        if (button) { button.click(); event.preventDefault(); }
      }
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes();
    undoWindow();
    importForm();
    shortcuts();
  });
})();
// Admin invitation: a button that copies the link shown once. Without a script or a clipboard
// (plain http away from localhost) the button stays hidden and the link stays selectable.
(function () {
  "use strict";
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("copy-invitation");
    var link = document.getElementById("invitation-link");
    var status = document.getElementById("copy-status");
    if (!button || !link || !status || !navigator.clipboard) { return; }
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(link.textContent).then(function () {
        status.textContent = "Copied";
      }, function () {
        status.textContent = "Could not copy: select the link and copy it";
      });
    });
  });
})();
