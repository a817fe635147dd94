// Starts Swagger UI on /docs. A file of its own rather than an inline script, so that the
// page's Content-Security-Policy allows this server's scripts and nothing else.
"use strict";

(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapi,
    domNode: root,
    deepLinking: true,
    // No badge from validator.swagger.io: the page calls no other host.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
