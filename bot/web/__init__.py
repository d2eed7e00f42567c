"""The HTTP server of ``guichet serve``: health check, channel webhooks, web pages."""
