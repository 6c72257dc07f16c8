// Loaded between require.js and the vendored embed-amd.js (nb_ipywidgets_js in _config.yml) on widget pages.
// The embedder finds its icon fonts next to the URL require.js gives its module: map that module to the
// vendored copy in _static/vendor/widgets/, so the fonts load from this site whatever the page's folder.
(function () {
  var me = document.currentScript ? new URL(document.currentScript.src, document.baseURI) : null;
  var dir = me ? me.origin + me.pathname.slice(0, me.pathname.lastIndexOf("/") + 1) : "_static/";
  require.config({ paths: { "@jupyter-widgets/html-manager/dist": dir + "vendor/widgets" } });
})();
