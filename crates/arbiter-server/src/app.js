// Arbiter annotation UI: blur-until-click and keyboard shortcuts. Pages work without it.
(function () {
  "use strict";
  function reveal() {
    var item = document.getElementById("item-text");
    var button = document.getElementById("reveal");
    if (item) { item.classList.remove("blurred"); }
    if (button) { button.setAttribute("aria-expanded", "true"); button.disabled = true; }
  }
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("reveal");
    if (button) {
      button.setAttribute("aria-expanded", "false");
      button.addEventListener("click", reveal);
    }
    // Admin import form: a chosen file is read into the text box, its name kept for errors.
    var file = document.getElementById("item-file");
    if (file) {
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
    var form = document.getElementById("label-form");
    if (!form) { return; }
    document.addEventListener("keydown", function (event) {
      var tag = (event.target && event.target.tagName) || "";
      if (tag === "TEXTAREA" || tag === "INPUT" && event.target.type === "text") { return; }
      if (event.ctrlKey || event.metaKey || event.altKey) { return; }
      if (event.key >= "1" && event.key <= "9") {
        var input = form.querySelector("input[data-key='" + event.key + "']");
        if (input) {
          if (input.type === "checkbox") { input.checked = !input.checked; } else { input.checked = true; }
          input.focus();
          event.preventDefault();
        }
      } else if (event.key === "s") {
        document.getElementById("skip").click();
        event.preventDefault();
      } else if (event.key === "v") {
        reveal();
        event.preventDefault();
      }
    });
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
