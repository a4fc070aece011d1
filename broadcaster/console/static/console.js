// Console-wide behaviour: the Chinese/English toggle (kept in localStorage), texts that cannot
// hold both languages (options, placeholders, titles), and the message catalogue for scripts.
"use strict";
(function () {
  const root = document.documentElement;
  const ATTRIBUTES = ["text", "placeholder", "title", "aria-label"];
  if (localStorage.getItem("console-lang") === "en") root.classList.add("lang-en");

  // Elements with data-en-<attribute> show their Chinese text, or the English one.
  function applyLanguage(english) {
    const selector = ATTRIBUTES.map((a) => `[data-en-${a}]`).join(",");
    for (const el of document.querySelectorAll(selector)) {
      for (const attr of ATTRIBUTES) {
        const en = el.getAttribute(`data-en-${attr}`);
        if (en === null) continue;
        if (!el.hasAttribute(`data-zh-${attr}`)) {
          el.setAttribute(`data-zh-${attr}`, attr === "text" ? el.textContent : el.getAttribute(attr) || "");
        }
        const value = english ? en : el.getAttribute(`data-zh-${attr}`);
        if (attr === "text") el.textContent = value;
        else el.setAttribute(attr, value);
      }
    }
  }

  let tables = null;
  function catalogue() {
    if (tables === null) {
      const block = document.getElementById("catalogue");
      tables = block ? JSON.parse(block.textContent) : { catalogue: { labels: {}, units: {}, details: {} }, channels: {} };
    }
    return tables;
  }

  // A span pair for Chinese and English words (the page's toggle shows one).
  function words(zh, en) {
    const pair = document.createDocumentFragment();
    for (const [cls, text] of [["zh", zh], ["en", en]]) {
      const span = document.createElement("span");
      span.className = cls;
      span.lang = cls === "zh" ? "zh-CN" : "en";
      span.textContent = text;
      pair.appendChild(span);
    }
    return pair;
  }

  window.consoleText = {
    words,
    // A code (state, CAP value, role) in both languages; ``table``: labels, units or details.
    label(value, table) {
      const found = catalogue().catalogue[table || "labels"][value] || [value, value];
      return words(found[0], found[1]);
    },
    channel(name) {
      const found = catalogue().channels[name] || [name, name];
      return words(found[0], found[1]);
    },
    english() { return root.classList.contains("lang-en"); },
    apply() { applyLanguage(root.classList.contains("lang-en")); },
  };

  document.addEventListener("DOMContentLoaded", function () {
    applyLanguage(root.classList.contains("lang-en"));
    const toggle = document.getElementById("lang-toggle");
    if (toggle) {
      toggle.addEventListener("click", function () {
        const english = root.classList.toggle("lang-en");
        localStorage.setItem("console-lang", english ? "en" : "zh");
        applyLanguage(english);
      });
    }
  });
})();
