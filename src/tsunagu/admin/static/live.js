// Refresh the live event list every two seconds (the page's own script; no libraries).
(function () {
  var body = document.getElementById("live-rows");
  if (!body) return;
  setInterval(function () {
    fetch("/ui/live?fragment=1", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) body.innerHTML = html; });
  }, 2000);
})();
