"""No video waits for good on events that can no longer come: a gateway that finds another Kafka cluster
behind its catalog (the broker's data was deleted, or the stack points at a new cluster) announces every
stored video again, and an identical upload of an unsettled, silent video announces it again."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from services.core import topics
from services.core.broker import EmbeddedBroker, free_port
from services.core.bus import read_topic_to_end
from services.core.settings import Settings
from services.gateway.catalog import Catalog
from tests.kafka_helpers import wait_until

from .conftest import candidate, running_gateway, span, upload, wait_for_status

pytestmark = pytest.mark.kafka


def _uploaded_ids(settings: Settings) -> list[str]:
    return [message.video_id for _key, message in read_topic_to_end(settings, topics.VIDEOS)]


def test_catalog_knows_which_cluster_it_follows(tmp_path: Path) -> None:
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
    try:
        assert not catalog.follows_other_cluster("cluster-a"), "an empty catalog follows nothing yet"
        catalog.bind_cluster("cluster-a")
        assert not catalog.follows_other_cluster("cluster-a")
        with catalog.engine.begin() as conn:
            catalog._store_offset(conn, topics.VIDEOS, 0, 42)
        assert catalog.follows_other_cluster("cluster-b")
        catalog.bind_cluster("cluster-b")
        assert catalog.load_offset(topics.VIDEOS, 0) is None, "offsets of the old cluster are dropped"
        assert not catalog.follows_other_cluster("cluster-b")
    finally:
        catalog.close()


def test_a_catalog_with_offsets_of_an_unrecorded_cluster_follows_another(tmp_path: Path) -> None:
    """A catalog kept from before the cluster was recorded (the in-memory broker's days) cannot vouch for its
    offsets on this cluster."""
    catalog = Catalog(f"sqlite:///{tmp_path}/catalog.db")
    try:
        with catalog.engine.begin() as conn:
            catalog._store_offset(conn, topics.VIDEOS, 0, 7)
        assert catalog.follows_other_cluster("cluster-a")
    finally:
        catalog.close()


def test_gateway_on_a_new_cluster_announces_its_videos_again(
    make_settings: Callable[..., Settings], shared_videos: Path, tmp_path: Path
) -> None:
    port = free_port()
    broker_dir = tmp_path / "kafka"
    broker = EmbeddedBroker(port, data_dir=broker_dir, log_path=tmp_path / "broker.log", heap_mb=256).start()
    settings = make_settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        retry_backoff_s=0.05,
        api_keys=["test-key-1"],
        catalog_final_stage="filter",
    )
    try:
        with running_gateway(settings) as client:
            juggle_id = upload(client, shared_videos / "juggle_one_person.mp4", description="a man juggles").json()[
                "video_id"
            ]
            card_id = upload(client, shared_videos / "test_card_no_person.mp4").json()["video_id"]
            client.app.state.runtime.producer.deliver([candidate(card_id, span(card_id, 0, 1, 0.0, 8.0))])
            wait_for_status(client, card_id, "completed")
            wait_for_status(client, juggle_id, "uploaded")
        first_cluster = broker.cluster_id

        # the broker's data is deleted: a new cluster on the same address, none of the events there
        broker.stop()
        shutil.rmtree(broker_dir)
        broker.start()
        assert broker.cluster_id != first_cluster
        assert _uploaded_ids(settings) == []

        with running_gateway(settings) as client:
            announced = wait_until(
                lambda: (ids := _uploaded_ids(settings)) and len(ids) >= 2 and ids, what="the videos announced again"
            )
            assert sorted(announced) == sorted([juggle_id, card_id])
            # the catalog reads the new cluster from its beginning and keeps what it knew
            assert client.app.state.runtime.catalog.follows_other_cluster(broker.cluster_id) is False
            body = wait_for_status(client, card_id, "completed")
            assert body["video_id"] == card_id
    finally:
        broker.kill()


def test_identical_upload_of_a_silent_unsettled_video_announces_it_again(
    make_settings: Callable[..., Settings], broker: EmbeddedBroker, shared_videos: Path
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=broker.bootstrap_servers,
        retry_backoff_s=0.05,
        api_keys=["test-key-1"],
        catalog_final_stage="filter",
        reannounce_after_s=0,
    )
    with running_gateway(settings) as client:
        first = upload(client, shared_videos / "juggle_one_person.mp4").json()
        video_id = first["video_id"]
        wait_until(lambda: _uploaded_ids(settings) == [video_id], what="the first announcement")

        again = upload(client, shared_videos / "juggle_one_person.mp4")
        assert again.status_code == 200
        assert again.json()["duplicate"] is True and again.json()["reannounced"] is True
        assert _uploaded_ids(settings) == [video_id, video_id]

        # once settled, an identical upload is only a duplicate
        client.app.state.runtime.producer.deliver([candidate(video_id, span(video_id, 0, 1, 0.0, 10.29))])
        wait_for_status(client, video_id, "completed")
        third = upload(client, shared_videos / "juggle_one_person.mp4").json()
        assert third["duplicate"] is True and third["reannounced"] is False
        assert len(_uploaded_ids(settings)) == 2


def test_identical_upload_of_a_video_heard_of_recently_is_not_announced_again(
    make_settings: Callable[..., Settings], broker: EmbeddedBroker, shared_videos: Path
) -> None:
    settings = make_settings(
        kafka_bootstrap_servers=broker.bootstrap_servers, api_keys=["test-key-1"], reannounce_after_s=3600
    )
    with running_gateway(settings) as client:
        video_id = upload(client, shared_videos / "juggle_one_person.mp4").json()["video_id"]
        wait_until(lambda: _uploaded_ids(settings) == [video_id], what="the first announcement")
        again = upload(client, shared_videos / "juggle_one_person.mp4").json()
        assert again["duplicate"] is True and again["reannounced"] is False
        assert _uploaded_ids(settings) == [video_id]
