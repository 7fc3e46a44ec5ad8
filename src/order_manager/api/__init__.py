"""REST API: FastAPI app factory, API-key guard, error shape, probes (see `app.create_app`)."""
