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

  // 3. Tables marked `stack-on-phone` (the runtime page): each cell gets its column's header as
  //    data-label, which site.css shows in front of the value when the rows stack on a narrow screen.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.stack-on-phone").forEach(function (table) {
      var heads = Array.from(table.querySelectorAll("thead th")).map(function (th) {
        return th.textContent.trim();
      });
      table.querySelectorAll("tbody tr").forEach(function (tr) {
        Array.from(tr.children).forEach(function (td, i) {
          if (!td.hasAttribute("data-label")) td.setAttribute("data-label", heads[i] || "");
        });
      });
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
    if (!window.Search || !Search.htmlToText || Search.__siteMath) return;
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
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".search-button-field[aria-label]").forEach(function (b) {
      b.removeAttribute("aria-label");
    });
    document.querySelectorAll(".theme-switch-button i, .search-button i").forEach(function (i) {
      i.removeAttribute("title");
      i.setAttribute("aria-hidden", "true");
    });
  });
})();
