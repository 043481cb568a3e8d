// Starts Swagger UI; the list of documents (one per service) comes from the gateway's
// swagger-config.json, rendered by scripts/gateway.py from the services it routes to.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    configUrl: "/api/docs/swagger-config.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
  });
};
