// Swagger UI over Baton's OpenAPI document. "Try it out" works with the page's session:
// a request that changes something carries the CSRF token, as the dashboard's forms do.
"use strict";
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.schema,
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    requestInterceptor: function (request) {
      if (request.method && !["GET", "HEAD", "OPTIONS"].includes(request.method)) {
        request.headers["X-CSRFToken"] = root.dataset.csrf;
      }
      return request;
    },
  });
});
