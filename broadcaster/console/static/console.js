// Console-wide behaviour: the Chinese/English toggle (kept in localStorage) and local times.
"use strict";
(function () {
  const root = document.documentElement;
  if (localStorage.getItem("console-lang") === "en") root.classList.add("lang-en");
  document.addEventListener("DOMContentLoaded", function () {
    const toggle = document.getElementById("lang-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        const english = root.classList.toggle("lang-en");
        localStorage.setItem("console-lang", english ? "en" : "zh");
      });
    }
    for (const el of document.querySelectorAll("time[data-ts]")) {
      const when = new Date(parseFloat(el.dataset.ts) * 1000);
      el.textContent = when.toLocaleString("zh-CN", { hour12: false });
      el.title = when.toISOString();
    }
  });
})();
