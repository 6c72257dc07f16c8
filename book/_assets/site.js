// The site's own script, loaded on every page after MathJax (html_js_files in _config.yml).
(function () {
  // 1. MathJax 3 typesets asynchronously (it loads TeX extensions on demand). jupyterquiz calls the
  //    synchronous MathJax.typeset, and the ipywidgets controls call MathJax 2's MathJax.Hub.Queue; either
  //    can run while the page's first typeset waits for an extension and corrupt it. Queue every such call
  //    behind MathJax's own promise instead.
  function bridge() {
    var mj = window.MathJax;
    if (!mj || !mj.version || mj.version.charAt(0) !== "3" || !mj.startup || mj.__siteBridge) return;
    var queue = function (elements) {
      mj.startup.promise = mj.startup.promise
        .then(function () { return mj.typesetPromise(elements); })
        .catch(function (err) { console.warn("MathJax typeset failed:", err); });
      return mj.startup.promise;
    };
    mj.typeset = function (elements) { queue(elements); };
    mj.Hub = { Queue: function (job) { queue(job && job[2] ? [job[2]] : undefined); } };
    mj.__siteBridge = true;
  }
  bridge();                                   // MathJax loads before this script (mathjax_options)...
  if (window.MathJax && window.MathJax.startup && window.MathJax.startup.promise) {
    window.MathJax.startup.promise.then(function () { window.MathJax.__siteBridge = false; bridge(); });
  }                                           // ...and its startup may redefine typeset: bridge again

  // 2. On pages with saved ipywidgets state, say what the static copy can and cannot do.
  document.addEventListener("DOMContentLoaded", function () {
    if (!document.querySelector('script[type="application/vnd.jupyter.widget-state+json"]')) return;
    var seen = new Set();
    document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').forEach(function (s) {
      var area = s.closest(".cell_output") || s.parentElement;
      if (!area || seen.has(area)) return;
      seen.add(area);
      var note = document.createElement("p");
      note.className = "widget-static-note";   // styled in site.css with theme colours (dark mode)
      note.textContent = "Static copy of an interactive widget: the controls move, but the output below is "
        + "recomputed only when the notebook runs with a Python kernel. Open it in Colab (launch button at the "
        + "top of the page) or in Jupyter to explore live.";
      area.insertBefore(note, area.firstChild);
    });
  });

  // 3. Tables on phones. Tables marked `stack-on-phone` (the runtime page), and on a narrow screen any
  //    content table (a DataFrame, a Markdown table) wider than its column, become blocks of "Header: value"
  //    lines (site.css) instead of running off the screen. Each cell gets its column's header (the last
  //    header row: a DataFrame's column names) as data-label.
  function labelTable(table) {
    var rows = table.querySelectorAll("thead tr");
    var last = rows.length ? rows[rows.length - 1] : null;
    var heads = last ? Array.from(last.children).map(function (th) { return th.textContent.trim(); }) : [];
    table.querySelectorAll("tbody tr").forEach(function (tr) {
      Array.from(tr.children).forEach(function (cell, i) {
        if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", heads[i] || "");
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    var narrow = window.matchMedia("(max-width: 600px)").matches;
    document.querySelectorAll("article table").forEach(function (table) {
      if (!table.classList.contains("stack-on-phone")) {
        var box = table.parentElement;
        if (!narrow || !box || table.getBoundingClientRect().width <= box.clientWidth + 1) return;
        table.classList.add("stack-on-phone");
      }
      labelTable(table);
    });
  });

  // 4. Search result snippets are cut from the text of the found page, where formulas are still TeX for
  //    MathJax ("\(\lfloor (n + 2p - k) / s \rfloor\)"). Turn them into plain text before Sphinx cuts.
  var TEX = [[/\\left|\\right|\\[,;!: ]|\\quad|\\qquad/g, " "], [/\\times/g, "×"], [/\\cdot/g, "·"],
    [/\\lfloor/g, "⌊"], [/\\rfloor/g, "⌋"], [/\\lceil/g, "⌈"], [/\\rceil/g, "⌉"], [/\\leq?\b/g, "≤"],
    [/\\geq?\b/g, "≥"], [/\\neq?\b/g, "≠"], [/\\approx/g, "≈"], [/\\to\b|\\rightarrow/g, "→"],
    [/\\in\b/g, "∈"], [/\\sum/g, "Σ"], [/\\prod/g, "Π"], [/\\infty/g, "∞"], [/\\partial/g, "∂"],
    [/\\sigma/g, "σ"], [/\\alpha/g, "α"], [/\\beta/g, "β"], [/\\gamma/g, "γ"], [/\\delta/g, "δ"],
    [/\\epsilon|\\varepsilon/g, "ε"], [/\\eta\b/g, "η"], [/\\lambda/g, "λ"], [/\\mu\b/g, "μ"],
    [/\\theta/g, "θ"], [/\\pi\b/g, "π"], [/\\mathbb\{R\}/g, "ℝ"],
    [/\\frac\{([^{}]*)\}\{([^{}]*)\}/g, "($1)/($2)"], [/\\sqrt\{([^{}]*)\}/g, "√($1)"],
    [/\\(?:text|mathrm|mathbf|mathit|operatorname|boldsymbol)\{([^{}]*)\}/g, "$1"],
    [/\\([A-Za-z]+)/g, "$1"], [/\\[()[\]]|\$\$?/g, ""], [/[{}]/g, ""], [/\s+/g, " "]];
  function texToText(tex) {
    return TEX.reduce(function (t, rule) { return t.replace(rule[0], rule[1]); }, tex).trim();
  }
  window.siteTexToText = texToText;   // for the browser test
  function patchSearch() {
    // searchtools.js declares `const Search`: a global binding, but not a property of window.
    if (typeof Search === "undefined" || !Search.htmlToText || Search.__siteMath) return;
    var original = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      var doc = new DOMParser().parseFromString(htmlString, "text/html");
      doc.querySelectorAll(".math").forEach(function (el) { el.textContent = texToText(el.textContent); });
      return original.call(this, doc.documentElement.outerHTML, anchor);
    };
    Search.__siteMath = true;
  }
  patchSearch();                                            // searchtools.js loaded before this script...
  document.addEventListener("DOMContentLoaded", patchSearch);  // ...or after it (runs before Search.init)

  // 5. The theme's header buttons (axe-core "label-content-name-mismatch", serious): the search field's
  //    aria-label "Search" hides its visible text "Search Ctrl+K" from speech input, and the colour-mode
  //    button's icons carry titles ("Light", "Dark") that count as its text. Let the visible text name the
  //    search field, and hide the decorative icons.
  //    Also: the sidebar's fold buttons (<summary> with only an icon) get a name; the bibliography's
  //    entries use the role a list needs (sphinxcontrib-bibtex writes the deprecated doc-biblioentry).
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".search-button-field[aria-label]").forEach(function (b) {
      b.removeAttribute("aria-label");
    });
    document.querySelectorAll(".theme-switch-button i, .search-button i").forEach(function (i) {
      i.removeAttribute("title");
      i.setAttribute("aria-hidden", "true");
    });
    document.querySelectorAll("summary").forEach(function (sm) {
      var text = sm.textContent.replace(/\s+/g, " ").trim();
      // myst-nb's folded cells: aria-label "Toggle hidden content" hides the visible "Show code cell source"
      if (text && sm.hasAttribute("aria-label") && sm.getAttribute("aria-label").indexOf(text) < 0) {
        sm.removeAttribute("aria-label");
        return;
      }
      if (text || sm.hasAttribute("aria-label")) return;
      var item = sm.closest("li");
      var link = item && item.querySelector(":scope > a");
      sm.setAttribute("aria-label", link ? "Sections of " + link.textContent.trim() : "Show more");
    });
    document.querySelectorAll('[role="list"] > [role="doc-biblioentry"]').forEach(function (el) {
      el.setAttribute("role", "listitem");
    });
  });

  // 6. Quizzes (jupyterquiz) and widget sliders (ipywidgets) render after the page loads and leave form
  //    fields without a name (axe "label", critical; "aria-input-field-name", serious): tie the quiz's
  //    "Type numeric answer here" label to its input, and name each slider after its description.
  function nameFields(root) {
    root.querySelectorAll(".Quiz input.Input-text").forEach(function (input) {
      var label = input.parentElement && input.parentElement.querySelector("label.InpLabel");
      if (label && input.id && !label.htmlFor) label.htmlFor = input.id;
      if (!label && !input.hasAttribute("aria-label")) input.setAttribute("aria-label", "Your answer");
    });
    root.querySelectorAll('[role="slider"]:not([aria-label])').forEach(function (handle) {
      var box = handle.closest(".widget-slider, .widget-inline-hbox, .jupyter-widgets");
      var label = box && box.querySelector(".widget-label");
      var text = label && label.textContent.trim();
      handle.setAttribute("aria-label", text || "slider");
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    nameFields(document);
    var pending = false;
    new MutationObserver(function () {
      if (pending) return;
      pending = true;
      setTimeout(function () { pending = false; nameFields(document); }, 50);
    }).observe(document.body, { childList: true, subtree: true });
  });
})();
