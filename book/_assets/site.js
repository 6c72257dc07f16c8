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
      note.className = "widget-static-note";
      note.style.cssText = "font-size:0.85em;color:#555;border-left:3px solid #8ab;padding:2px 8px;margin:4px 0;";
      note.textContent = "Static copy of an interactive widget: the controls move, but the output below is "
        + "recomputed only when the notebook runs with a Python kernel. Open it in Colab (launch button at the "
        + "top of the page) or in Jupyter to explore live.";
      area.insertBefore(note, area.firstChild);
    });
  });
})();
