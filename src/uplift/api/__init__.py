"""The HTTP service over the registry's champion model: ``create_app`` and its settings (see docs/service.md)."""

from uplift.api.app import create_app
from uplift.api.settings import ServiceSettings, load_service_settings

__all__ = ["ServiceSettings", "create_app", "load_service_settings"]
