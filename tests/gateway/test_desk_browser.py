"""The review desk in a real headless Chromium (issue 15), against the gateway under uvicorn on a real broker, with
a clip the real stages made (tests/gateway/review_data.py).

A reviewer opens the desk from the link `haic up` prints, sees the queue, opens the clip, plays it and sees the
pose overlay follow the playhead (canvas pixels read back at two times), edits an attribute and sees the HAIC
text re-rendered, rejects one QA item and approves the others, submits; the review is on haic.reviews.v1, the
queue and the catalog say `reviewed`, and `haic export --reviewed-only` holds exactly the approved items. Markup
in a description or a label stays text, and a state-changing request with the cookie but without the CSRF header
is refused. Screenshots go to $HAIC_SCREENSHOT_DIR (or the test's tmp_path).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kafka import KafkaConsumer

from clients.export import BENCH_FILE, run_export
from haic.v1 import events_pb2
from services.core import topics
from services.core.bus import EventProducer
from services.core.settings import Settings
from tests.kafka_helpers import wait_until

from .browser import headless_chromium, require_chromium
from .conftest import GatewayServer
from .review_data import ReviewableClip, publish, reviewable_clip

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

ALICE_KEY = "alice-desk-key-0123"
ALICE = {"Authorization": f"Bearer {ALICE_KEY}"}
BOB_KEY = "bob-desk-key-4567"
# Each part would run script if it ever reached the DOM as markup.
MARKUP = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'
WAIT_S = 30
VIDEO_WAIT_S = 180
APPROVED = events_pb2.ITEM_DECISION_APPROVED


@pytest.fixture
def desk_settings(gateway_settings: Settings) -> Settings:
    require_chromium()
    return gateway_settings.model_copy(update={"reviewers": [f"alice:{ALICE_KEY}", f"bob:{BOB_KEY}"]})


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("HAIC_SCREENSHOT_DIR") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _served_clip(settings: Settings, producer: EventProducer, description: str) -> ReviewableClip:
    clip = reviewable_clip(settings, description=description)
    publish(producer, clip)
    return clip


@pytest.fixture
def gateway(desk_settings: Settings) -> Iterator[GatewayServer]:
    with GatewayServer(desk_settings) as server:
        yield server


@pytest.fixture
def browser(tmp_path: Path) -> Iterator:
    with headless_chromium(tmp_path / "chromium-profile") as driver:
        yield driver


def _wait(driver, condition, what: str, timeout_s: float = WAIT_S):
    """Until `condition(driver)` is truthy; an element replaced under it (the page re-renders) is looked up again."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (NoSuchElementException, StaleElementReferenceException)
    wait = WebDriverWait(driver, timeout_s, poll_frequency=0.1, ignored_exceptions=ignored)
    return wait.until(lambda d: condition(d), message=what)


def _queue_ids(gateway: GatewayServer, **params: str) -> dict[str, dict]:
    response = requests.get(f"{gateway.url}/v1/review/queue", params=params, headers=ALICE, timeout=10)
    assert response.status_code == 200, response.text
    return {item["clip_id"]: item for item in response.json()["items"]}


def _in_queue(gateway: GatewayServer, clip: ReviewableClip) -> None:
    def qa_catalogued() -> bool:
        view = requests.get(f"{gateway.url}/v1/review/clips/{clip.clip_id}", headers=ALICE, timeout=10)
        return view.status_code == 200 and len(view.json()["qa"]) == len(clip.qa.items)

    wait_until(qa_catalogued, WAIT_S, "the clip and its QA in the catalog")


def _open_desk(driver, gateway: GatewayServer) -> None:
    driver.get(f"{gateway.url}/desk/#key={ALICE_KEY}")
    _wait(driver, lambda d: d.find_element("id", "who").text == "signed in as alice", "the desk to sign alice in")
    assert "key=" not in driver.current_url  # the key left the address bar


def _open_clip(driver, clip: ReviewableClip) -> None:
    def click_row(d) -> bool:
        d.find_element("css selector", f'#queue-rows tr[data-item="{clip.clip_id}"] a').click()
        return True

    _wait(driver, lambda d: d.find_element("id", "queue").is_displayed() and click_row(d), "the clip's row")
    _wait(driver, lambda d: d.find_element("id", "caption-text").text.strip(), "the rendered caption text")


def _row(driver, clip: ReviewableClip):
    return driver.find_element("css selector", f'#queue-rows tr[data-item="{clip.clip_id}"]')


def _current_time(driver) -> float:
    return driver.execute_script("return document.getElementById('video').currentTime")


def _canvas_at(driver, media_time: float) -> tuple[str, int]:
    """Seeks the clip's video to `media_time`, waits for the overlay of that time; (digest, painted pixels)."""
    driver.execute_async_script(
        """const [time, done] = arguments;
        const video = document.getElementById('video');
        video.pause();
        video.addEventListener('seeked', () => requestAnimationFrame(() => done()), {once: true});
        video.currentTime = time;""",
        media_time,
    )
    return _canvas(driver)


def _canvas(driver) -> tuple[str, int]:
    pixels = driver.execute_script(
        """const canvas = document.getElementById('overlay');
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < data.length; i += 4) if (data[i]) painted += 1;
        return [Array.from(data.filter((_, i) => i % 97 === 0)).join(','), painted];"""
    )
    return hashlib.sha256(pixels[0].encode()).hexdigest(), pixels[1]


def _no_policy_violations(driver) -> None:
    """The page ran under the desk's CSP without tripping it: no inline script or style, nothing from outside."""
    logs = driver.get_log("browser")
    assert not [entry for entry in logs if "Content Security Policy" in entry["message"]], logs


def _pwned(driver) -> object:
    return driver.execute_script("return window.__pwned;")


def _reviews_on_topic(settings: Settings) -> list[events_pb2.Review]:
    consumer = KafkaConsumer(
        topics.REVIEWS,
        bootstrap_servers=settings.kafka_bootstrap_servers.split(","),
        auto_offset_reset="earliest",
        consumer_timeout_ms=3000,
    )
    try:
        return [events_pb2.Review.FromString(record.value) for record in consumer]
    finally:
        consumer.close()


def test_a_reviewer_reviews_the_sample_clip_end_to_end(
    desk_settings: Settings,
    producer: EventProducer,
    gateway: GatewayServer,
    browser,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    clip = _served_clip(desk_settings, producer, "A person kicks, first with the left leg, then with the right.")
    _in_queue(gateway, clip)
    driver = browser

    # --- the queue, reached from the link `haic up` prints
    _open_desk(driver, gateway)
    _wait(driver, lambda d: d.find_elements("css selector", f'#queue-rows tr[data-item="{clip.clip_id}"]'), "the row")
    row = _row(driver, clip)
    assert "unreviewed" in row.text and "passed" in row.text
    driver.save_screenshot(str(screenshots / "desk-queue.png"))

    # --- the clip: the video plays and the overlay follows the playhead
    _open_clip(driver, clip)
    # the gateway cuts the clip on its first request (~2 s of CPU per second of the sample's 1280x720)
    ready = "return document.getElementById('video').readyState"
    _wait(driver, lambda d: d.execute_script(ready) >= 2, "the clip's video", timeout_s=VIDEO_WAIT_S)
    assert driver.find_element("id", "video-status").text == ""
    first, first_painted = _canvas_at(driver, 1.0)
    second, second_painted = _canvas_at(driver, 3.0)
    assert first_painted > 500 and second_painted > 500, "the overlay draws the person's box and skeleton"
    assert first != second, "the overlay moved with the playhead"
    # playing (not only seeking) moves it too: rVFC / timeupdate drive the drawing
    driver.execute_script("document.getElementById('video').play();")
    _wait(driver, lambda d: _current_time(d) > 4.0, "playback")
    driver.execute_script("document.getElementById('video').pause();")
    played, _ = _canvas(driver)
    assert played not in (first, second)
    assert driver.find_element("id", "playhead-time").text.startswith("t = ")
    bars = driver.find_elements("css selector", "#timeline .bar")
    assert [bar.text for bar in bars] == [a.verb_phrase for a in clip.caption.subjects[0].actions]
    # the keyboard: l goes one second on (the focus on the page, not in a field)
    before_key = _current_time(driver)
    driver.find_element("id", "clip-title").send_keys("l")
    _wait(driver, lambda d: abs(_current_time(d) - (before_key + 1.0)) < 0.05, "l to go one second on")
    bars[-1].click()  # a bar seeks to its action's start
    start = clip.caption.subjects[0].actions[-1].start_s - clip.verdict.span.start_s
    _wait(driver, lambda d: abs(_current_time(d) - start) < 0.1, "the seek to the action's start")

    # --- an attribute edited: the HAIC text is rendered again by the server
    text_before = driver.find_element("id", "caption-text").text
    # the captioner saw no face, so it left the gender unsaid; the reviewer sees a man
    assert clip.caption.subjects[0].attributes.gender == ""
    Select(driver.find_element("css selector", '[data-path="subjects[0].attributes.gender"]')).select_by_value("male")
    _wait(driver, lambda d: d.find_element("id", "caption-text").text != text_before, "the re-rendered text")
    text_after = driver.find_element("id", "caption-text").text

    # --- markup typed into the label and an action is text wherever it shows: the timeline, the overlay's
    # canvas and the HAIC text the server renders (the sample's text names no label: one subject, no interaction)
    fields = {
        path: driver.find_element("css selector", f'[data-path="{path}"]')
        for path in ("subjects[0].label", "subjects[0].actions[0].verb_phrase")
    }
    originals = {path: field.get_attribute("value") for path, field in fields.items()}
    for field in fields.values():
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(MARKUP)
    _wait(driver, lambda d: MARKUP in d.find_element("id", "caption-text").text, "the markup in the rendered text")
    assert driver.find_element("css selector", "#timeline .row-label").text == MARKUP
    assert driver.find_elements("css selector", "#timeline .bar")[0].text == MARKUP
    assert not driver.find_elements("css selector", "#clip script, #clip img")
    assert _pwned(driver) is None
    for path, field in fields.items():
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(originals[path])
    _wait(driver, lambda d: d.find_element("id", "caption-text").text == text_after, "the caption restored")

    # --- an action added (focus on its verb phrase) that ends after the clip: the problem shows by its field
    n = len(clip.caption.subjects[0].actions)
    driver.find_element("xpath", '//button[text()="Add action"]').click()
    focused = driver.switch_to.active_element
    assert focused.get_attribute("data-path") == f"subjects[0].actions[{n}].verb_phrase"
    focused.send_keys("waves")
    end = driver.find_element("css selector", f'[data-path="subjects[0].actions[{n}].end_s"]')
    end.send_keys(Keys.CONTROL, "a")
    end.send_keys("99")
    next_to_end = f'[data-path="subjects[0].actions[{n}].end_s"] + .problem'
    _wait(driver, lambda d: d.find_elements("css selector", next_to_end), "the end's problem next to it")
    assert end.get_attribute("aria-invalid") == "true"
    described = driver.find_element("id", end.get_attribute("aria-describedby"))  # a screen reader reads it
    assert described.text.startswith(f"subjects[0].actions[{n}].end_s: ")
    assert driver.find_element("id", "problem-count").text == "1 problem in the caption"
    assert len(driver.find_elements("css selector", "#timeline .bar")) == n + 1
    driver.find_element("css selector", f'[data-path="subjects[0].actions[{n}]"] button').click()  # remove it
    _wait(driver, lambda d: d.find_element("id", "caption-text").text == text_after, "the action removed")
    assert not driver.find_elements("css selector", "#caption-editor .problem")

    # --- an item edited: checked against the edited caption by the generator's validator, problems by the field
    def card(index: int):  # a decision rebuilds its card: found afresh each time
        return driver.find_elements("css selector", "#qa-items .qa-item")[index]

    card(1).find_element("css selector", "button.edit").click()
    wrong = (clip.qa.items[1].answer_index + 1) % 4
    card(1).find_elements("css selector", 'input[type="radio"]')[wrong].click()
    _wait(driver, lambda d: "answer_index" in card(1).text, "the wrong answer's problem on the item")
    placed = driver.execute_script(
        """return [...arguments[0].querySelectorAll('.problem')].map((p) => [p.textContent,
            (p.previousElementSibling && p.previousElementSibling.dataset.path) || p.parentElement.dataset.path]);""",
        card(1),
    )
    assert any(text.startswith("answer_index: ") for text, _ in placed), placed
    assert all(text.split(": ")[0] == path for text, path in placed if not text.startswith("warning")), placed
    # an added item with nothing in it: its problems show on it; removed again
    driver.find_element("id", "add-item").click()
    _wait(driver, lambda d: card(-1).find_elements("css selector", ".problem"), "the empty item's problems")
    card(-1).find_element("css selector", "button.reject").click()  # "Remove item"
    assert len(driver.find_elements("css selector", "#qa-items .qa-item")) == len(clip.qa.items)

    # --- QA: one item rejected, every other approved (the edit above discarded)
    cards = driver.find_elements("css selector", "#qa-items .qa-item")
    assert len(cards) == len(clip.qa.items)
    rejected_id = clip.qa.items[0].item_id
    card(0).find_element("css selector", "button.reject").click()
    for index in range(1, len(cards)):
        card(index).find_element("css selector", "button.approve").click()
    assert "1 rejected" in driver.find_element("id", "qa-summary").text
    driver.find_element("id", "note").send_keys("gender added")
    driver.execute_script("window.scrollTo(0, 0);")
    driver.save_screenshot(str(screenshots / "desk-clip.png"))

    # --- submit: the queue shows the new state
    driver.find_element("id", "submit-review").click()
    _wait(driver, lambda d: d.find_element("id", "queue").is_displayed(), "the queue after the submit")
    _wait(driver, lambda d: "reviewed once" in _row(d, clip).text, "the clip's new state in the queue")
    assert "saved" in driver.find_element("id", "flash").text
    driver.save_screenshot(str(screenshots / "desk-queue-reviewed.png"))

    # --- the review event on haic.reviews.v1
    [review] = _reviews_on_topic(desk_settings)
    assert review.reviewer == "alice" and review.decision == events_pb2.REVIEW_DECISION_ACCEPTED
    assert review.span.clip_id == clip.clip_id and review.note == "gender added"
    assert review.caption_after.subjects[0].attributes.gender == "male"
    assert review.caption_before.text == clip.caption.text != review.caption_after.text
    assert review.caption_after.text == text_after
    decisions = {item.item_id: item.decision for item in review.items}
    assert decisions == {
        item.item_id: events_pb2.ITEM_DECISION_REJECTED if item.item_id == rejected_id else APPROVED
        for item in clip.qa.items
    }

    # --- the catalog's state, through the API
    assert _queue_ids(gateway, state="reviewed")[clip.clip_id]["reviewers"] == ["alice"]
    assert clip.clip_id not in _queue_ids(gateway, state="unreviewed")

    # --- haic export --reviewed-only: exactly the approved items
    out = tmp_path / "export"
    run_export(desk_settings, out, clips=False, progress=False, reviewed_only=True)
    bench = json.loads((out / BENCH_FILE).read_text())
    assert [record["id"] for record in bench] == [item.item_id for item in clip.qa.items if item.item_id != rejected_id]
    assert all(record["review"]["reviewed"] and record["review"]["reviewers"] == ["alice"] for record in bench)

    # --- a second reviewer signs in with the form: the clip opens as a check of alice's review
    driver.find_element("id", "sign-out").click()
    _wait(driver, lambda d: d.find_element("id", "signin").is_displayed(), "the sign-in form")
    driver.find_element("id", "signin-key").send_keys(BOB_KEY, Keys.ENTER)
    _wait(driver, lambda d: d.find_element("id", "who").text == "signed in as bob", "bob signed in")
    _open_clip(driver, clip)
    assert driver.find_element("id", "check-banner").is_displayed()
    assert "alice" in driver.find_element("id", "check-banner").text
    assert "alice accepted" in driver.find_element("id", "reviews-list").text
    assert driver.find_element("id", "caption-text").text == text_after  # alice's caption is the start
    assert len(driver.find_elements("css selector", "#qa-items .qa-item")) == len(bench)  # her kept items
    driver.find_element("id", "submit-review").click()  # nothing decided yet: the page says so, sends nothing
    assert "Decide every QA item first" in driver.find_element("id", "submit-status").text
    driver.find_element("id", "approve-rest").click()
    driver.find_element("id", "submit-review").click()
    _wait(driver, lambda d: "now checked" in d.find_element("id", "flash").text, "the check saved")
    assert "Against the review you checked: caption agrees" in driver.find_element("id", "flash").text
    agreement = "Agreement of 1 check on 1 clip: captions 100.0%"
    _wait(driver, lambda d: d.find_element("id", "agreement").text.startswith(agreement), "the agreement report")
    Select(driver.find_element("css selector", '#filters [name="state"]')).select_by_value("all")
    driver.find_element("css selector", '#filters button[type="submit"]').click()
    _wait(driver, lambda d: "checked" in _row(d, clip).text and "alice, bob" in _row(d, clip).text, "checked")
    check = _reviews_on_topic(desk_settings)[-1]
    assert check.reviewer == "bob" and check.checks_review_id == review.review_id
    _no_policy_violations(driver)


def test_markup_stays_text_and_a_cookie_without_the_csrf_header_changes_nothing(
    desk_settings: Settings,
    producer: EventProducer,
    gateway: GatewayServer,
    browser,
    screenshots: Path,
) -> None:
    clip = _served_clip(desk_settings, producer, f"Uploaded as {MARKUP} by someone")
    _in_queue(gateway, clip)
    driver = browser
    # This browser plays as one without requestVideoFrameCallback: the overlay's timeupdate + rAF path runs.
    driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument",
        {"source": "delete HTMLVideoElement.prototype.requestVideoFrameCallback;"},
    )
    _open_desk(driver, gateway)
    _wait(driver, lambda d: d.find_elements("css selector", f'#queue-rows tr[data-item="{clip.clip_id}"]'), "the row")
    row = _row(driver, clip)
    assert row.find_element("css selector", "td.description").text == f"Uploaded as {MARKUP} by someone"
    _open_clip(driver, clip)
    assert driver.find_element("id", "clip-description").text == f"Uploaded as {MARKUP} by someone"
    assert not driver.find_elements("css selector", "main script, main img")
    assert _pwned(driver) is None
    _no_policy_violations(driver)
    driver.save_screenshot(str(screenshots / "desk-markup-as-text.png"))

    # the overlay follows playback without requestVideoFrameCallback too
    assert driver.execute_script("return 'requestVideoFrameCallback' in HTMLVideoElement.prototype") is False
    ready = "return document.getElementById('video').readyState"
    _wait(driver, lambda d: d.execute_script(ready) >= 2, "the clip's video", timeout_s=VIDEO_WAIT_S)
    digests = []
    for until in (1.5, 3.0):
        driver.execute_script("document.getElementById('video').play();")
        _wait(driver, lambda d, until=until: _current_time(d) > until, f"playback past {until} s")
        driver.execute_script("document.getElementById('video').pause();")
        digest, painted = _canvas(driver)
        assert painted > 500
        digests.append(digest)
    assert digests[0] != digests[1]

    # The page's own cookie, a state-changing request without the X-CSRF-Token header: refused, nothing stored.
    refused = driver.execute_async_script(
        """const [clipId, done] = arguments;
        const body = {checks_review_id: '', decision: 'accepted', caption: {}, items: [], note: 'forged'};
        fetch(`/v1/review/clips/${clipId}/reviews`, {method: 'POST', credentials: 'same-origin',
              headers: {'Content-Type': 'application/json'}, body: JSON.stringify(body)})
          .then(async (r) => done([r.status, await r.json()]));""",
        clip.clip_id,
    )
    assert refused[0] == 403 and refused[1]["detail"]["code"] == "csrf_failed", refused
    sign_out = driver.execute_async_script(
        """const done = arguments[0];
        fetch('/desk/session', {method: 'DELETE', credentials: 'same-origin'}).then((r) => done(r.status));"""
    )
    assert sign_out == 403
    still = driver.execute_async_script(
        "const done = arguments[0]; fetch('/desk/session').then((r) => done(r.status));"
    )
    assert still == 200  # the forged sign-out did not sign out either
    assert _reviews_on_topic(desk_settings) == []
    assert _queue_ids(gateway, state="unreviewed")[clip.clip_id]["review_state"] == "unreviewed"
