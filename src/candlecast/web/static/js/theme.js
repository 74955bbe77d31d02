// Runs before first paint: the remembered theme, else the system's preference.
(function () {
  var saved = null;
  try { saved = localStorage.getItem("cc-theme"); } catch (e) { /* storage may be blocked */ }
  var dark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  document.documentElement.setAttribute("data-theme", saved || (dark ? "dark" : "light"));
})();
