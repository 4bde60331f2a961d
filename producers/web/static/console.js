// Omvänt console: a little progressive enhancement. Every page works without this file;
// with it, the case draft ("Skicka ärende") is updated in place instead of reloaded, so a
// verdict on a resident or a file appears at once and the keyboard focus stays where it was.
(function () {
  "use strict";

  function enhance(form) {
    form.addEventListener("submit", function (event) {
      var submitter = event.submitter;
      if (submitter && submitter.value === "send") { return; }  // a real navigation to the list
      if (submitter && submitter.value === "discard") { return; }
      event.preventDefault();
      var data = new FormData(form);
      if (submitter && submitter.name) { data.append(submitter.name, submitter.value); }
      var focusId = submitter && submitter.id;
      var busy = form.querySelectorAll("button");
      busy.forEach(function (b) { b.setAttribute("aria-busy", "true"); });
      // form.action would be the buttons named "action": read the attribute
      fetch(form.getAttribute("action") || window.location.pathname, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { "X-Requested-With": "fetch" }
      }).then(function (response) {
        if (response.redirected) { window.location.href = response.url; return null; }
        return response.text();
      }).then(function (html) {
        if (html === null) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.querySelector("main");
        var main = document.querySelector("main");
        if (!fresh || !main) { document.open(); document.write(html); document.close(); return; }
        main.innerHTML = fresh.innerHTML;
        wire();
        var target = (focusId && document.getElementById(focusId)) ||
          document.querySelector("#messages [role=alert], #messages [role=status]") ||
          document.getElementById("personnummer");
        if (submitter && submitter.value === "add-residents") {
          target = document.getElementById("personnummer");
        }
        if (submitter && submitter.value === "preview" && document.getElementById("preview")) {
          target = document.getElementById("h-preview");
          target.setAttribute("tabindex", "-1");
        }
        if (target) { target.focus(); }
      }).catch(function () {
        form.submit();  // fall back to the plain post
      });
    });
  }

  function wire() {
    document.querySelectorAll("form[data-enhance]").forEach(function (form) {
      if (!form.dataset.enhanced) { form.dataset.enhanced = "1"; enhance(form); }
    });
    // "Lägg till" on Enter in the personnummer field, not the form's first button
    var pnr = document.getElementById("personnummer");
    var add = document.getElementById("add-resident");
    if (pnr && add && !pnr.dataset.wired) {
      pnr.dataset.wired = "1";
      pnr.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { event.preventDefault(); add.click(); }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", wire);
})();
