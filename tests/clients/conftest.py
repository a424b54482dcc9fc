"""The clients talk to a real gateway: its fixtures (settings with an API key, an S3-compatible server) are shared."""

from tests.gateway.conftest import gateway_settings, s3_endpoint  # noqa: F401 - fixtures, used by name
