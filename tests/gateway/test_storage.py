"""The gateway storing uploads in an S3-compatible store (moto server); the stores: tests/core/test_storage.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import boto3
import pytest

from services.core import topics
from services.core.settings import Settings
from tests.kafka_helpers import read_topic_to_end

from .conftest import API_KEY, running_gateway, upload


@pytest.mark.kafka
def test_gateway_stores_uploads_in_s3(
    s3_endpoint: str, broker, make_settings: Callable[..., Settings], shared_videos: Path
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        api_keys=[API_KEY],
        storage_url="s3://videos/haic",
        s3_endpoint_url=s3_endpoint,
    )
    source = shared_videos / "pedestrians_small_long.avi"
    with running_gateway(settings) as client:
        response = upload(client, source, name="v.mp4")
    assert response.status_code == 202, response.text
    video_id = response.json()["video_id"]
    key = f"haic/videos/{video_id}/source.avi"
    body = boto3.client("s3", endpoint_url=s3_endpoint).get_object(Bucket="videos", Key=key)["Body"].read()
    assert body == source.read_bytes()
    [(_, announced)] = read_topic_to_end(settings, topics.VIDEOS)
    assert announced.storage_uri == f"s3://videos/{key}"
    assert list((settings.data_dir / "cache").iterdir()) == []  # the spooled upload was removed
