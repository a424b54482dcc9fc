"""The clients talk to a real gateway: its settings fixture (with an API key) is shared."""

from tests.gateway.conftest import gateway_settings  # noqa: F401 - a fixture, used by name
