"""The routers, one per resource: health, model, segments, plans, scores."""

from uplift.api.routes import health, model, plans, scores, segments

__all__ = ["health", "model", "plans", "scores", "segments"]
