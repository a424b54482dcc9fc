// The review desk (issue 15): a reviewer's queue, the clip with its pose evidence drawn over it, the caption and
// QA editors, and the review's submission. Plain ES module, no framework, nothing from outside the gateway.
//
// Every text that comes from the pipeline or from users (captions, labels, QA, descriptions, ids, error messages)
// reaches the page only through textContent, value or setAttribute of inert attributes: nothing here assigns
// innerHTML, so markup in a caption stays text whatever the server sends.

const MIN_KEYPOINT_SCORE = 0.3; // keypoints below this score are guesses: drawn neither as points nor limbs
const RENDER_DEBOUNCE_MS = 200;
const QUEUE_PAGE = 50;
const PALETTE = ["#ff4d4f", "#36cfc9", "#ffc53d", "#9254de", "#73d13d", "#40a9ff", "#ff85c0", "#ffa940"];

const $ = (id) => document.getElementById(id);

const state = {
  reviewer: "",
  csrf: "",
  queue: { offset: 0, total: 0, filters: { state: "awaiting" }, lastReviewed: "" },
  view: null, // the ClipReviewView of the open clip
  caption: null, // the caption being edited (a copy of view.caption)
  items: [], // [{item_id, base, decision, edited, added, problems}]
  addedCount: 0,
  renderSeq: 0,
  validateSeq: 0,
  captionProblems: [],
  problemIds: 0,
  draw: null, // the overlay's drawing state of the open clip
};

// ---------------------------------------------------------------- DOM helpers (no innerHTML anywhere)

// Attributes that carry no script: anything else (on*, href, src, style) is set explicitly where it is needed.
const SAFE_ATTRIBUTES = new Set([
  "class", "id", "type", "name", "title", "role", "for", "min", "max", "step", "placeholder", "list",
  "aria-label", "aria-pressed", "aria-invalid", "aria-describedby", "aria-live", "data-path", "data-item",
  "data-decision",
  "tabindex", "maxlength", "rows", "spellcheck", "autocomplete", "colspan", "scope",
]);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else if (key === "value") node.value = String(value);
    else if (key === "checked" || key === "selected" || key === "disabled" || key === "hidden") node[key] = true;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (SAFE_ATTRIBUTES.has(key)) node.setAttribute(key, value === true ? "" : String(value));
    else throw new Error(`attribute ${key} is not on the desk's list of safe attributes`);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  node.replaceChildren();
  return node;
}

function flash(message, bad = false) {
  const box = $("flash");
  box.textContent = message;
  box.classList.toggle("bad", bad);
  box.hidden = !message;
}

const fmtTime = (s) => (Number.isFinite(s) ? `${s.toFixed(2)} s` : "");

function debounce(fn, ms) {
  let timer = 0;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
  debounced.flush = () => {
    clearTimeout(timer);
    return fn();
  };
  return debounced;
}

// ---------------------------------------------------------------- API

// The gateway's errors are `{"detail": {"code", "message", "problems"?}}`; a request the schema refuses is FastAPI's
// `{"detail": [{"loc", "msg"}]}`.
class ApiError extends Error {
  constructor(status, body) {
    const detail = body && (body.detail ?? body.error);
    let message = `HTTP ${status}`;
    let code = "";
    let problems = [];
    if (Array.isArray(detail)) {
      problems = detail.map((d) => ({ path: (d.loc || []).slice(1).join("."), message: d.msg || String(d) }));
      message = "the request was malformed";
    } else if (detail && typeof detail === "object") {
      message = detail.message || message;
      code = detail.code || "";
      problems = detail.problems || [];
    } else if (typeof detail === "string") {
      message = detail;
    }
    super(message);
    this.status = status;
    this.code = code;
    this.problems = problems;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // The session's CSRF token on every state-changing call: the gateway refuses cookie-only POSTs and DELETEs.
  if (method !== "GET" && state.csrf) headers["X-CSRF-Token"] = state.csrf;
  const response = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  const text = await response.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 && !path.startsWith("/desk/session")) showSignIn("Your session ended: sign in again.");
    throw error;
  }
  return data;
}

// ---------------------------------------------------------------- sign-in

function signedIn(body) {
  state.reviewer = body.reviewer;
  state.csrf = body.csrf_token;
  $("who").textContent = `signed in as ${body.reviewer}`;
  $("sign-out").hidden = false;
  $("signin").hidden = true;
}

function showSignIn(message = "") {
  state.reviewer = "";
  state.csrf = "";
  $("who").textContent = "";
  $("sign-out").hidden = true;
  $("queue").hidden = true;
  $("clip").hidden = true;
  stopOverlay();
  // what the previous reviewer had open is not left in the page for the next one
  clear($("queue-rows"));
  state.view = null;
  state.caption = null;
  state.items = [];
  $("signin").hidden = false;
  $("signin-error").textContent = message;
  $("signin-key").focus();
}

async function signIn(key) {
  try {
    signedIn(await api("POST", "/desk/session", { key }));
    return true;
  } catch (error) {
    const reason =
      error.code === "not_a_reviewer"
        ? "This key may read but not review: ask for a reviewer key."
        : error.status === 401
          ? "The key was not accepted."
          : error.message;
    showSignIn(reason);
    return false;
  }
}

async function restoreSession() {
  try {
    signedIn(await api("GET", "/desk/session"));
    return true;
  } catch {
    return false;
  }
}

async function signOut() {
  try {
    await api("DELETE", "/desk/session");
  } finally {
    history.replaceState(null, "", location.pathname + location.search);
    showSignIn("Signed out.");
  }
}

// ---------------------------------------------------------------- routing: #clip=<id> opens a clip, else the queue

// Clearing the hash fires hashchange (which routes) only when there was one.
function goToQueue() {
  if (location.hash && location.hash !== "#") location.hash = "";
  else route();
}

function route() {
  if (!state.reviewer) return;
  const match = /^#clip=(.+)$/.exec(location.hash);
  if (match) openClip(decodeURIComponent(match[1]));
  else showQueue();
}

// ---------------------------------------------------------------- queue

function stateBadge(reviewState) {
  return el("span", { class: `badge ${reviewState}`, text: reviewState === "reviewed" ? "reviewed once" : reviewState });
}

async function showQueue() {
  stopOverlay();
  $("clip").hidden = true;
  $("queue").hidden = false;
  document.title = "Queue · HAIC review desk";
  const params = new URLSearchParams({ limit: String(QUEUE_PAGE), offset: String(state.queue.offset) });
  for (const [key, value] of Object.entries(state.queue.filters)) if (value) params.set(key, value);
  $("queue-summary").textContent = "Loading…";
  let page;
  try {
    page = await api("GET", `/v1/review/queue?${params}`);
  } catch (error) {
    $("queue-summary").textContent = `The queue did not load: ${error.message}`;
    return;
  }
  state.queue.total = page.total;
  const rows = clear($("queue-rows"));
  const categories = new Set();
  for (const item of page.items) {
    for (const slug of item.categories || []) categories.add(slug);
    const link = el("a", { class: "mono", text: item.clip_id });
    link.setAttribute("href", `#clip=${encodeURIComponent(item.clip_id)}`);
    const row = el(
      "tr",
      { class: item.clip_id === state.queue.lastReviewed ? "just-reviewed" : undefined, "data-item": item.clip_id },
      el("td", {}, stateBadge(item.review_state)),
      el("td", {}, link),
      el("td", { class: "mono", text: item.video_id }),
      el("td", { class: "mono", text: `${item.start_s.toFixed(2)}–${item.end_s.toFixed(2)} s` }),
      el("td", { class: "description", text: item.description }),
      el("td", { text: item.stage }),
      el("td", {}, el("span", { class: `badge ${item.judge_passed ? "passed" : "failed"}`, text: item.judge_passed ? "passed" : "not passed" })),
      el("td", { text: `${item.qa_item_count} (${(item.categories || []).join(", ")})` }),
      el("td", { text: (item.reviewers || []).join(", ") }),
    );
    rows.append(row);
  }
  const datalist = $("category-options");
  const known = new Set([...datalist.options].map((o) => o.value));
  for (const slug of categories) if (!known.has(slug)) datalist.append(el("option", { value: slug }));
  const first = page.total ? state.queue.offset + 1 : 0;
  const last = state.queue.offset + page.items.length;
  $("queue-summary").textContent = page.total ? `${first}–${last} of ${page.total} clips` : "No clip matches.";
  $("queue-page").textContent = page.total ? `page ${Math.floor(state.queue.offset / QUEUE_PAGE) + 1}` : "";
  $("queue-prev").disabled = state.queue.offset === 0;
  $("queue-next").disabled = last >= page.total;
  showAgreement();
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const percent = (share) => (share === null || share === undefined ? "–" : `${(share * 100).toFixed(1)}%`);

// How far second reviewers agree with the first (for the video filtered on, else everything).
async function showAgreement() {
  const box = $("agreement");
  const params = new URLSearchParams();
  if (state.queue.filters.video_id) params.set("video_id", state.queue.filters.video_id);
  try {
    const report = await api("GET", `/v1/review/agreement?${params}`);
    box.textContent = report.checks
      ? `Agreement of ${plural(report.checks, "check")} on ${plural(report.checked_clips, "clip")}: ` +
        `captions ${percent(report.caption_agreement)}, ` +
        `QA items ${percent(report.item_agreement)} of ${report.items_compared}` +
        Object.entries(report.by_category || {})
          .map(([slug, c]) => ` · ${slug} ${percent(c.share)}`)
          .join("")
      : "No review has been checked by a second person yet.";
  } catch {
    box.textContent = ""; // the queue works without it
  }
}

function applyFilters(event) {
  event.preventDefault();
  const form = new FormData($("filters"));
  state.queue.filters = Object.fromEntries([...form.entries()].map(([k, v]) => [k, String(v).trim()]));
  state.queue.offset = 0;
  showQueue();
}

// ---------------------------------------------------------------- clip view

async function openClip(clipId) {
  $("queue").hidden = true;
  $("clip").hidden = false;
  flash("");
  $("submit-status").textContent = "";
  clear($("submit-problems"));
  let view;
  try {
    view = await api("GET", `/v1/review/clips/${encodeURIComponent(clipId)}`);
  } catch (error) {
    flash(`The clip ${clipId} did not load: ${error.message}`, true);
    return;
  }
  state.view = view;
  state.caption = structuredClone(view.caption);
  state.addedCount = 0;
  state.items = view.qa.map((item) => ({
    item_id: item.item_id,
    base: item,
    decision: "",
    edited: null,
    added: false,
    editing: false,
    problems: [],
  }));
  const clip = view.clip;
  document.title = `${clip.clip_id} · HAIC review desk`;
  $("clip-title").textContent = `Clip ${clip.clip_id}`;
  $("clip-description").textContent = clip.description;
  $("clip-meta").textContent =
    `video ${clip.video_id} · ${fmtTime(clip.start_s)}–${fmtTime(clip.end_s)} · stage ${clip.stage} · ` +
    `caption by ${clip.caption_backend} · judge ${clip.judge_passed ? "passed" : "did not pass"}` +
    (clip.judge_reasons && clip.judge_reasons.length ? ` (${clip.judge_reasons.join("; ")})` : "");
  showReviews(view);
  $("note").value = "";
  document.querySelector('input[name="decision"][value="accepted"]').checked = true;
  const categorySelect = clear($("add-item-category"));
  for (const slug of view.vocabulary.categories) categorySelect.append(el("option", { value: slug, text: slug }));
  setupPlayer(view);
  buildEditor();
  buildQA();
  renderCaption.flush();
  $("clip-title").focus();
}

function baseReview(view) {
  return view.reviews.find((review) => review.review_id === view.base_review_id) || null;
}

// A clip whose current version is someone else's review opens as a check of that review.
function checksReviewId() {
  const base = state.view && baseReview(state.view);
  return base && base.reviewer !== state.reviewer ? base.review_id : "";
}

function showReviews(view) {
  const list = clear($("reviews-list"));
  for (const review of view.reviews) {
    const counts = review.items || {};
    let agreement = "";
    if (review.agreement) {
      const a = review.agreement;
      agreement =
        ` · agreement with the review it checks: caption ${a.caption_agrees ? "agrees" : "differs"}, ` +
        `${a.items_agreed}/${a.items_compared} items agree`;
    }
    list.append(
      el(
        "li",
        {},
        el("strong", { text: review.reviewer }),
        ` ${review.decision} at ${review.reviewed_at}` +
          (review.checks_review_id ? ` (checks ${review.checks_review_id})` : "") +
          ` · caption ${review.caption_changed ? "changed" : "unchanged"}` +
          ` · items approved ${counts.approved || 0}, edited ${counts.edited || 0}, rejected ${counts.rejected || 0},` +
          ` added ${counts.added || 0}` +
          agreement,
        el("span", { class: "mono", text: ` ${review.review_id}` }),
      ),
    );
  }
  $("reviews-box").hidden = view.reviews.length === 0;
  const checks = checksReviewId();
  const banner = $("check-banner");
  banner.hidden = !checks;
  if (checks) {
    const base = baseReview(view);
    banner.textContent =
      `You are checking ${base.reviewer}'s review ${base.review_id}: the caption and items below are theirs. ` +
      "Keep what is right, correct what is not; the agreement between you is recorded.";
  }
}

// ---------------------------------------------------------------- player and pose overlay

function stopOverlay() {
  const video = $("video");
  if (state.draw) state.draw.stopped = true;
  state.draw = null;
  if (!video.paused) video.pause();
}

function medianStep(samples) {
  const steps = [];
  for (let i = 1; i < samples.length; i += 1) steps.push(samples[i].t_s - samples[i - 1].t_s);
  if (!steps.length) return 0;
  steps.sort((a, b) => a - b);
  return steps[Math.floor(steps.length / 2)];
}

function setupPlayer(view) {
  const video = $("video");
  const canvas = $("overlay");
  const tracks = view.tracks.map((track, index) => {
    const samples = [...track.samples].sort((a, b) => a.t_s - b.t_s);
    return { ...track, samples, step: medianStep(samples), color: PALETTE[index % PALETTE.length] };
  });
  if (state.draw) state.draw.stopped = true; // the previous clip's frame callbacks end with it
  const draw = { tracks, stopped: false, lastT: NaN };
  state.draw = draw;
  video.src = view.video_url;
  canvas.width = view.clip.width;
  canvas.height = view.clip.height;
  // The frame's shape from the start: the overlay lines up with the picture before the video has loaded too.
  if (view.clip.width > 0 && view.clip.height > 0) $("stage").style.aspectRatio = `${view.clip.width} / ${view.clip.height}`;
  const repaint = (mediaTime) => {
    if (draw.stopped) return;
    drawOverlay(view, draw, mediaTime);
  };
  video.onloadedmetadata = () => {
    // The cut's frames are the source's size, even-rounded: scale the source's pixel coordinates by it.
    canvas.width = video.videoWidth || view.clip.width;
    canvas.height = video.videoHeight || view.clip.height;
    repaint(video.currentTime);
  };
  // The first request of a clip cuts it on the gateway (seconds per second of video): say so while it waits.
  const videoStatus = $("video-status");
  videoStatus.textContent = "Preparing the video (the first view of a clip cuts it)…";
  video.onloadeddata = () => {
    videoStatus.textContent = "";
  };
  video.onerror = () => {
    const code = video.error ? video.error.code : "";
    videoStatus.textContent = `The video did not play (media error ${code}): the evidence and editors still work.`;
  };
  video.onseeked = () => repaint(video.currentTime);
  video.ontimeupdate = () => repaint(video.currentTime);
  if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
    // Frame-exact: called with the presented frame's media time.
    const onFrame = (_now, metadata) => {
      if (draw.stopped) return;
      repaint(metadata.mediaTime);
      video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
  } else {
    const onAnimationFrame = () => {
      if (draw.stopped) return;
      if (!video.paused) repaint(video.currentTime);
      requestAnimationFrame(onAnimationFrame);
    };
    requestAnimationFrame(onAnimationFrame);
  }
  $("show-overlay").onchange = () => repaint(video.currentTime);
  buildTimeline();
  repaint(0);
}

// The pose of a track at source time t: interpolated between the two samples around t when they are a usual
// sample step apart, else the nearest sample within half a step; null outside the track's span or in a gap.
function poseAt(track, t) {
  const samples = track.samples;
  if (!samples.length) return null;
  const first = samples[0];
  const last = samples[samples.length - 1];
  if (t < first.t_s || t > last.t_s) return samples.length === 1 && Math.abs(t - first.t_s) < 1e-3 ? first : null;
  let hi = samples.findIndex((s) => s.t_s >= t);
  if (hi <= 0) return samples[Math.max(hi, 0)];
  const a = samples[hi - 1];
  const b = samples[hi];
  const gap = b.t_s - a.t_s;
  if (gap <= 0) return b;
  if (gap <= track.step * 1.5 + 1e-6) {
    const w = (t - a.t_s) / gap;
    const mix = (u, v) => u + (v - u) * w;
    return {
      t_s: t,
      box: a.box.map((value, i) => mix(value, b.box[i])),
      keypoints: a.keypoints.map((kp, i) => {
        const other = b.keypoints[i];
        return [mix(kp[0], other[0]), mix(kp[1], other[1]), Math.min(kp[2], other[2])];
      }),
    };
  }
  const nearest = t - a.t_s <= b.t_s - t ? a : b;
  return Math.abs(nearest.t_s - t) <= track.step / 2 + 1e-6 ? nearest : null;
}

function drawOverlay(view, draw, mediaTime) {
  const canvas = $("overlay");
  const ctx = canvas.getContext("2d");
  const t = mediaTime + view.clip.start_s;
  draw.lastT = t;
  $("playhead-time").textContent = `t = ${t.toFixed(2)} s`;
  movePlayhead(t);
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (!$("show-overlay").checked) return;
  const scale = canvas.width / (view.clip.width || canvas.width);
  const lineWidth = Math.max(2, canvas.width / 320);
  ctx.lineWidth = lineWidth;
  ctx.font = `${Math.round(Math.max(12, canvas.width / 45))}px system-ui, sans-serif`;
  for (const track of draw.tracks) {
    const pose = poseAt(track, t);
    if (!pose) continue;
    ctx.strokeStyle = track.color;
    ctx.fillStyle = track.color;
    const [x1, y1, x2, y2] = pose.box.map((v) => v * scale);
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const points = pose.keypoints;
    ctx.beginPath();
    for (const [i, j] of view.skeleton) {
      const p = points[i];
      const q = points[j];
      if (!p || !q || p[2] < MIN_KEYPOINT_SCORE || q[2] < MIN_KEYPOINT_SCORE) continue;
      ctx.moveTo(p[0] * scale, p[1] * scale);
      ctx.lineTo(q[0] * scale, q[1] * scale);
    }
    ctx.stroke();
    for (const [x, y, score] of points) {
      if (score < MIN_KEYPOINT_SCORE) continue;
      ctx.beginPath();
      ctx.arc(x * scale, y * scale, lineWidth * 1.6, 0, 2 * Math.PI);
      ctx.fill();
    }
    // Canvas text is pixels, never markup: the label can hold anything.
    const label = subjectLabel(track.track_id) || track.label || `track ${track.track_id}`;
    const metrics = ctx.measureText(label);
    const height = parseInt(ctx.font, 10) + 6;
    const top = Math.max(0, y1 - height);
    const left = Math.max(0, Math.min(x1, canvas.width - metrics.width - 8)); // kept inside the frame
    ctx.fillRect(left, top, metrics.width + 8, height);
    ctx.fillStyle = "#000";
    ctx.fillText(label, left + 4, top + height - 5);
  }
}

// The label the reviewer is editing for a track (the overlay follows the editor), else the view's.
function subjectLabel(trackId) {
  const subject = state.caption && state.caption.subjects.find((s) => s.track_id === trackId);
  return subject ? subject.label : "";
}

function repaintNow() {
  if (state.draw && state.view) drawOverlay(state.view, state.draw, $("video").currentTime);
}

function movePlayhead(t) {
  const head = document.querySelector("#timeline .playhead");
  if (!head || !state.view) return;
  const { start_s, end_s } = state.view.clip;
  const share = Math.min(1, Math.max(0, (t - start_s) / (end_s - start_s)));
  head.style.left = `${(share * 100).toFixed(3)}%`;
}

function seekTo(sourceTime) {
  const video = $("video");
  video.currentTime = Math.max(0, sourceTime - state.view.clip.start_s);
}

function buildTimeline() {
  const box = clear($("timeline"));
  if (!state.view) return;
  const { start_s, end_s } = state.view.clip;
  const duration = end_s - start_s;
  const share = (t) => `${((Math.min(end_s, Math.max(start_s, t)) - start_s) / duration * 100).toFixed(3)}%`;
  const lanes = el("div", { class: "lane-area" });
  state.caption.subjects.forEach((subject, index) => {
    const track = state.draw && state.draw.tracks.find((tr) => tr.track_id === subject.track_id);
    const color = track ? track.color : PALETTE[index % PALETTE.length];
    const lane = el("div", { class: "track" });
    for (const action of subject.actions) {
      const name = `${action.verb_phrase} (${fmtTime(action.start_s)}–${fmtTime(action.end_s)})`;
      const bar = el("button", {
        type: "button",
        class: "bar",
        title: name,
        "aria-label": `${subject.label || `subject ${subject.track_id}`}: ${name}; seek to its start`,
        text: action.verb_phrase,
        onclick: () => seekTo(action.start_s),
      });
      bar.style.left = share(action.start_s);
      bar.style.width = `calc(${share(action.end_s)} - ${share(action.start_s)})`;
      bar.style.background = color;
      lane.append(bar);
    }
    lanes.append(
      el("div", { class: "row" }, el("span", { class: "row-label", title: subject.label, text: subject.label || `subject ${subject.track_id}` }), lane),
    );
  });
  const axis = el("div", { class: "track axis" });
  const head = el("div", { class: "playhead" });
  axis.append(head);
  lanes.append(el("div", { class: "row" }, el("span", { class: "row-label", text: `${fmtTime(start_s)}–${fmtTime(end_s)}` }), axis));
  // The playhead spans every lane: it lives in an overlay over the bar column.
  head.remove();
  const overlay = el("div", { class: "row playhead-layer" });
  const headColumn = el("div", { class: "playhead-column" });
  headColumn.append(head);
  overlay.append(el("span", {}), headColumn);
  lanes.append(overlay);
  box.append(lanes);
  if (state.draw && Number.isFinite(state.draw.lastT)) movePlayhead(state.draw.lastT);
}

// ---------------------------------------------------------------- caption editor

function field(labelText, control, path, extraClass = "") {
  if (path) control.setAttribute("data-path", path);
  return el("label", { class: `field ${extraClass}`.trim() }, labelText, control);
}

function textInput(value, onValue, attrs = {}) {
  return el("input", { type: "text", value: value ?? "", spellcheck: "false", oninput: (e) => onValue(e.target.value), ...attrs });
}

function numberInput(value, onValue, { integer = false, step = "0.01" } = {}) {
  return el("input", {
    type: "number",
    step: integer ? "1" : step,
    min: integer ? "0" : undefined,
    // shown to the millisecond; the stored value changes only when the reviewer edits the field
    value: Number.isFinite(value) ? (integer ? value : Number(value.toFixed(3))) : 0,
    oninput: (e) => {
      const parsed = integer ? parseInt(e.target.value, 10) : parseFloat(e.target.value);
      onValue(Number.isFinite(parsed) ? parsed : 0);
    },
  });
}

function selectInput(options, value, onValue) {
  const select = el("select", { onchange: (e) => onValue(e.target.value) });
  const all = options.includes(value) || !value ? options : [value, ...options];
  if (!value) select.append(el("option", { value: "", text: "(unset)" }));
  for (const option of all) select.append(el("option", { value: option, text: option, selected: option === value }));
  select.value = value ?? "";
  return select;
}

function removeButton(what, onRemove) {
  return el("button", { type: "button", class: "small", "aria-label": `remove ${what}`, title: `remove ${what}`, text: "✕", onclick: onRemove });
}

// Any edit: re-render the text (debounced), re-check edited items against the new caption, redraw.
// `focus`: the data-path of the field to focus once the editor is rebuilt (a rebuilt editor loses the focus).
function captionChanged({ structure = false, focus = "" } = {}) {
  if (structure) {
    buildEditor();
    const target = focus && $("caption-editor").querySelector(`[data-path="${CSS.escape(focus)}"]`);
    if (target) target.focus();
  }
  buildTimeline();
  repaintNow();
  renderCaption();
  if (state.items.some((item) => item.edited)) validateItems();
}

function ensureSubjectShape(subject) {
  subject.attributes ??= {};
  subject.attributes.clothing ??= [];
  subject.attributes.accessories ??= [];
  subject.actions ??= [];
}

function buildEditor() {
  const vocabulary = state.view.vocabulary;
  const caption = state.caption;
  caption.subjects ??= [];
  caption.interactions ??= [];
  const box = clear($("subjects"));
  caption.subjects.forEach((subject, s) => {
    ensureSubjectShape(subject);
    const at = `subjects[${s}]`;
    const attributes = subject.attributes;
    const set = (fn) => (value) => {
      fn(value);
      captionChanged();
    };
    const clothing = el("div", {});
    attributes.clothing.forEach((piece, c) => {
      clothing.append(
        el(
          "div",
          { class: "list-row", "data-path": `${at}.attributes.clothing[${c}]` },
          field("item", textInput(piece.item, set((v) => (piece.item = v))), `${at}.attributes.clothing[${c}].item`),
          field("colour", textInput(piece.color, set((v) => (piece.color = v))), `${at}.attributes.clothing[${c}].color`),
          removeButton(`clothing ${c + 1}`, () => {
            attributes.clothing.splice(c, 1);
            captionChanged({ structure: true });
          }),
        ),
      );
    });
    const accessories = el("div", {});
    attributes.accessories.forEach((accessory, a) => {
      accessories.append(
        el(
          "div",
          { class: "list-row" },
          field("accessory", textInput(accessory, set((v) => (attributes.accessories[a] = v))), `${at}.attributes.accessories[${a}]`),
          removeButton(`accessory ${a + 1}`, () => {
            attributes.accessories.splice(a, 1);
            captionChanged({ structure: true });
          }),
        ),
      );
    });
    const actions = el("div", {});
    subject.actions.forEach((action, k) => {
      const ap = `${at}.actions[${k}]`;
      actions.append(
        el(
          "div",
          { class: "list-row", "data-path": ap },
          field("start (s)", numberInput(action.start_s, set((v) => (action.start_s = v))), `${ap}.start_s`, "narrow"),
          field("end (s)", numberInput(action.end_s, set((v) => (action.end_s = v))), `${ap}.end_s`, "narrow"),
          field("verb phrase", textInput(action.verb_phrase, set((v) => (action.verb_phrase = v))), `${ap}.verb_phrase`),
          field("body part", textInput(action.body_part, set((v) => (action.body_part = v))), `${ap}.body_part`),
          field("direction", textInput(action.direction, set((v) => (action.direction = v))), `${ap}.direction`),
          field("reps", numberInput(action.repetitions, set((v) => (action.repetitions = v)), { integer: true }), `${ap}.repetitions`, "narrow"),
          field("target", textInput(action.target, set((v) => (action.target = v))), `${ap}.target`),
          removeButton(`action ${k + 1}`, () => {
            subject.actions.splice(k, 1);
            captionChanged({ structure: true });
          }),
        ),
      );
    });
    const lastEnd = subject.actions.length ? subject.actions[subject.actions.length - 1].end_s : state.view.clip.start_s;
    box.append(
      el(
        "fieldset",
        { class: "subject", "data-path": at },
        el("legend", { text: `Subject (track ${subject.track_id})` }),
        el(
          "div",
          { class: "grid" },
          field("label", textInput(subject.label, set((v) => renameSubject(subject, v))), `${at}.label`, "wide"),
          field("gender", selectInput(vocabulary.genders, attributes.gender, set((v) => (attributes.gender = v))), `${at}.attributes.gender`),
          field("age group", selectInput(vocabulary.age_groups, attributes.age_group, set((v) => (attributes.age_group = v))), `${at}.attributes.age_group`),
        ),
        el("div", { class: "subsection", text: "Clothing" }),
        clothing,
        el("button", {
          type: "button",
          class: "small",
          text: "Add clothing",
          onclick: () => {
            attributes.clothing.push({ item: "", color: "" });
            captionChanged({ structure: true, focus: `${at}.attributes.clothing[${attributes.clothing.length - 1}].item` });
          },
        }),
        el("div", { class: "subsection", text: "Accessories" }),
        accessories,
        el("button", {
          type: "button",
          class: "small",
          text: "Add accessory",
          onclick: () => {
            attributes.accessories.push("");
            captionChanged({ structure: true, focus: `${at}.attributes.accessories[${attributes.accessories.length - 1}]` });
          },
        }),
        el("div", { class: "subsection", text: "Actions" }),
        actions,
        el("button", {
          type: "button",
          class: "small",
          text: "Add action",
          onclick: () => {
            const start = Math.min(lastEnd, state.view.clip.end_s);
            subject.actions.push({
              start_s: start,
              end_s: Math.min(start + 1, state.view.clip.end_s),
              verb_phrase: "",
              body_part: "",
              direction: "",
              repetitions: 0,
              target: "",
            });
            captionChanged({ structure: true, focus: `${at}.actions[${subject.actions.length - 1}].verb_phrase` });
          },
        }),
      ),
    );
  });
  buildInteractions();
  showCaptionProblems();
}

// A renamed subject stays the one its interactions name (they refer to subjects by label).
function renameSubject(subject, label) {
  const previous = subject.label;
  subject.label = label;
  for (const interaction of state.caption.interactions) {
    if (interaction.subject_label === previous) interaction.subject_label = label;
    if (interaction.object_label === previous) interaction.object_label = label;
  }
  // the subject and object selects list the labels as they are now
  if (state.caption.interactions.length) buildInteractions();
}

function buildInteractions() {
  const vocabulary = state.view.vocabulary;
  const caption = state.caption;
  const labels = caption.subjects.map((subject) => subject.label);
  const box = clear($("interactions"));
  caption.interactions.forEach((interaction, n) => {
    const ip = `interactions[${n}]`;
    const set = (fn) => (value) => {
      fn(value);
      captionChanged();
    };
    box.append(
      el(
        "div",
        { class: "list-row", "data-path": ip },
        field("kind", selectInput(vocabulary.interaction_kinds, interaction.kind, set((v) => (interaction.kind = v))), `${ip}.kind`),
        field("subject", selectInput(labels, interaction.subject_label, set((v) => (interaction.subject_label = v))), `${ip}.subject_label`),
        field("object", selectInput(labels, interaction.object_label, set((v) => (interaction.object_label = v))), `${ip}.object_label`),
        field("start (s)", numberInput(interaction.start_s, set((v) => (interaction.start_s = v))), `${ip}.start_s`, "narrow"),
        field("end (s)", numberInput(interaction.end_s, set((v) => (interaction.end_s = v))), `${ip}.end_s`, "narrow"),
        removeButton(`interaction ${n + 1}`, () => {
          caption.interactions.splice(n, 1);
          captionChanged({ structure: true });
        }),
      ),
    );
  });
  $("add-interaction").disabled = caption.subjects.length === 0;
}

function addInteraction() {
  const caption = state.caption;
  const labels = caption.subjects.map((subject) => subject.label);
  caption.interactions.push({
    start_s: state.view.clip.start_s,
    end_s: state.view.clip.end_s,
    kind: state.view.vocabulary.interaction_kinds[0] || "",
    subject_label: labels[0] || "",
    object_label: labels[1] || labels[0] || "",
  });
  captionChanged({ structure: true, focus: `interactions[${caption.interactions.length - 1}].kind` });
}

// Problems by path: next to the field whose data-path is the path, else its nearest ancestor path that has one
// (`subjects[0].actions` lands on the subject), else in the list under the rendered text.
function placeProblems(root, problems, fallbackList) {
  for (const old of root.querySelectorAll(".problem")) old.remove();
  for (const invalid of root.querySelectorAll('[aria-invalid="true"]')) invalid.removeAttribute("aria-invalid");
  for (const described of root.querySelectorAll("[aria-describedby]")) described.removeAttribute("aria-describedby");
  if (fallbackList) clear(fallbackList);
  for (const problem of problems) {
    let path = problem.path || "";
    let target = null;
    while (path) {
      target = root.querySelector(`[data-path="${CSS.escape(path)}"]`);
      if (target) break;
      const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
      path = cut > 0 ? path.slice(0, cut) : "";
    }
    // A warning (e.g. a question form the truth oracle cannot check) is shown but does not block a submit.
    const warning = problem.severity === "warning";
    const text = `${warning ? "warning: " : ""}${problem.path ? `${problem.path}: ` : ""}${problem.message}`;
    // Not an alert each: they are re-made on every keystroke's render; a field names its problem instead
    // (aria-describedby), and the count is announced once (#problem-count).
    state.problemIds += 1;
    const id = `problem-${state.problemIds}`;
    const message = el("span", { class: warning ? "problem warning" : "problem", id, text });
    if (target && target.tagName !== "FIELDSET" && !target.classList.contains("list-row") && !target.classList.contains("qa-item")) {
      if (!warning) target.setAttribute("aria-invalid", "true");
      target.setAttribute("aria-describedby", id);
      target.after(message);
    } else if (target) {
      target.append(message);
    } else if (fallbackList) {
      fallbackList.append(el("li", {}, message));
    } else {
      root.append(message);
    }
  }
}

function showCaptionProblems() {
  placeProblems($("caption-editor"), state.captionProblems, $("caption-problems"));
  const errors = state.captionProblems.filter((problem) => problem.severity !== "warning").length;
  const count = errors ? `${errors} problem${errors === 1 ? "" : "s"} in the caption` : "";
  if ($("problem-count").textContent !== count) $("problem-count").textContent = count;
}

const renderCaption = debounce(async () => {
  if (!state.view) return;
  const seq = ++state.renderSeq;
  const clipId = state.view.clip.clip_id;
  try {
    const result = await api("POST", `/v1/review/clips/${encodeURIComponent(clipId)}/render`, { caption: state.caption });
    if (seq !== state.renderSeq || !state.view || state.view.clip.clip_id !== clipId) return;
    state.caption.text = result.text;
    $("caption-text").textContent = result.text;
    state.captionProblems = result.problems || [];
    showCaptionProblems();
  } catch (error) {
    if (seq === state.renderSeq) $("caption-text").textContent = `(not rendered: ${error.message})`;
  }
}, RENDER_DEBOUNCE_MS);

// ---------------------------------------------------------------- QA

function currentItem(entry) {
  return entry.edited || entry.base;
}

function qaSummary() {
  const undecided = state.items.filter((entry) => !entry.decision).length;
  const counts = { approved: 0, edited: 0, rejected: 0, added: 0 };
  for (const entry of state.items) if (entry.decision) counts[entry.decision] += 1;
  $("qa-summary").textContent =
    `${counts.approved} approved, ${counts.edited} edited, ${counts.rejected} rejected, ${counts.added} added` +
    (undecided ? `; ${undecided} without a decision` : "");
}

function setDecision(entry, decision) {
  entry.decision = decision;
  if (decision === "edited") {
    entry.edited ??= structuredClone(entry.base);
    entry.editing = true;
  } else if (!entry.added) {
    entry.edited = null;
    entry.editing = false;
    entry.problems = [];
  }
  // Only this card is rebuilt, and the focus stays on the button pressed (keyboard reviewers go on from there).
  const old = $("qa-items").querySelector(`[data-item="${CSS.escape(entry.item_id)}"]`);
  const card = buildItem(entry);
  if (old) old.replaceWith(card);
  else buildQA();
  qaSummary();
  const focus = decision === "edited" ? card.querySelector("textarea") : card.querySelector(`button[data-decision="${decision}"]`);
  if (focus) focus.focus();
  if (decision === "edited") validateItems.flush();
}

function buildQA() {
  const list = clear($("qa-items"));
  for (const entry of state.items) list.append(buildItem(entry));
  qaSummary();
}

function buildItem(entry) {
  const item = currentItem(entry);
  const card = el("li", { class: `qa-item ${entry.decision}`.trim(), "data-item": entry.item_id });
  const categories = state.view.vocabulary.categories;
  card.append(
    el(
      "div",
      { class: "meta" },
      el("span", { class: "badge category", text: item.category }),
      " ",
      el("span", { class: "mono", text: entry.added ? "new item" : entry.item_id }),
    ),
  );
  if (entry.editing) {
    const edited = entry.edited;
    const changed = () => {
      validateItems();
    };
    if (entry.added) {
      card.append(field("category", selectInput(categories, edited.category, (v) => ((edited.category = v), changed())), "category"));
    }
    card.append(
      field(
        "question",
        el("textarea", { rows: "2", value: edited.question, oninput: (e) => ((edited.question = e.target.value), changed()) }),
        "question",
      ),
    );
    const options = el("fieldset", { "data-path": "answer_index" }, el("legend", { text: "Options (the selected one is the answer)" }));
    edited.options.forEach((option, o) => {
      const radio = el("input", {
        type: "radio",
        name: `answer-${entry.item_id}`,
        "aria-label": `option ${o + 1} is the answer`,
        checked: edited.answer_index === o,
        onchange: () => ((edited.answer_index = o), changed()),
      });
      const text = textInput(option, (v) => ((edited.options[o] = v), changed()), { "aria-label": `option ${o + 1}` });
      text.setAttribute("data-path", `options[${o}]`);
      options.append(el("div", { class: "option-row" }, radio, text));
    });
    card.append(options);
    const facts = el("div", { "data-path": "facts" }, el("div", { class: "subsection", text: "Facts" }));
    edited.facts.forEach((fact, f) => {
      facts.append(
        el(
          "div",
          { class: "list-row" },
          field(`fact ${f + 1}`, textInput(fact, (v) => ((edited.facts[f] = v), changed())), `facts[${f}]`),
          removeButton(`fact ${f + 1}`, () => {
            edited.facts.splice(f, 1);
            buildQA();
            validateItems();
          }),
        ),
      );
    });
    facts.append(
      el("button", {
        type: "button",
        class: "small",
        text: "Add fact",
        onclick: () => {
          edited.facts.push("");
          buildQA();
        },
      }),
    );
    card.append(facts);
  } else {
    const options = el("ol", { class: "options", type: "A" });
    item.options.forEach((option, o) => {
      options.append(el("li", { class: o === item.answer_index ? "correct" : undefined, text: option }));
    });
    card.append(el("p", { class: "question", text: item.question }), options);
    if (item.facts && item.facts.length) card.append(el("p", { class: "facts", text: `facts: ${item.facts.join(" · ")}` }));
  }
  const buttons = el("div", { class: "actions" });
  if (entry.added) {
    buttons.append(
      el("button", {
        type: "button",
        class: "reject",
        text: "Remove item",
        onclick: () => {
          state.items.splice(state.items.indexOf(entry), 1);
          buildQA();
        },
      }),
    );
  } else {
    for (const [decision, label] of [["approved", "Approve"], ["edited", "Edit"], ["rejected", "Reject"]]) {
      buttons.append(
        el("button", {
          type: "button",
          class: decision === "approved" ? "approve" : decision === "rejected" ? "reject" : "edit",
          "aria-pressed": entry.decision === decision ? "true" : "false",
          "data-decision": decision,
          text: label,
          onclick: () => setDecision(entry, decision),
        }),
      );
    }
  }
  card.append(buttons);
  placeProblems(card, entry.problems, null);
  return card;
}

function addItem() {
  state.addedCount += 1;
  const category = $("add-item-category").value;
  const item = {
    item_id: `new-${state.addedCount}`,
    category,
    question: "",
    options: ["", "", "", ""],
    answer_index: 0,
    facts: [],
  };
  state.items.push({ item_id: item.item_id, base: item, decision: "added", edited: item, added: true, editing: true, problems: [] });
  buildQA();
  validateItems();
  const cards = $("qa-items").querySelectorAll(".qa-item");
  const textarea = cards[cards.length - 1].querySelector("textarea");
  if (textarea) textarea.focus();
}

// Edited and added items, checked against the caption as edited by the generator's own validator.
const validateItems = debounce(async () => {
  if (!state.view) return;
  const entries = state.items.filter((entry) => entry.edited);
  if (!entries.length) return;
  const seq = ++state.validateSeq;
  const clipId = state.view.clip.clip_id;
  try {
    const result = await api("POST", `/v1/review/clips/${encodeURIComponent(clipId)}/validate-items`, {
      caption: state.caption,
      items: entries.map((entry) => entry.edited),
    });
    if (seq !== state.validateSeq || !state.view || state.view.clip.clip_id !== clipId) return;
    const byId = new Map(result.items.map((checked) => [checked.item_id, checked.problems]));
    for (const entry of entries) {
      entry.problems = byId.get(entry.item_id) || [];
      const card = $("qa-items").querySelector(`[data-item="${CSS.escape(entry.item_id)}"]`);
      if (card) placeProblems(card, entry.problems, null);
    }
  } catch (error) {
    flash(`The items were not validated: ${error.message}`, true);
  }
}, RENDER_DEBOUNCE_MS);

// ---------------------------------------------------------------- submit

function submittedItems() {
  return state.items.map((entry) => {
    const decided = { item_id: entry.added ? "" : entry.item_id, decision: entry.decision };
    if (entry.decision === "edited" || entry.decision === "added") decided.item = entry.edited;
    return decided;
  });
}

async function submitReview() {
  const status = $("submit-status");
  status.classList.remove("ok");
  clear($("submit-problems"));
  const undecided = state.items.filter((entry) => !entry.decision);
  if (undecided.length) {
    status.textContent =
      `Decide every QA item first (${undecided.length} without a decision; ` +
      "the buttons above the items approve or reject all the undecided ones at once).";
    const first = $("qa-items").querySelector(`[data-item="${CSS.escape(undecided[0].item_id)}"] button`);
    if (first) first.focus();
    return;
  }
  const decision = document.querySelector('input[name="decision"]:checked').value;
  const clipId = state.view.clip.clip_id;
  const body = {
    checks_review_id: checksReviewId(),
    decision,
    caption: state.caption,
    items: submittedItems(),
    note: $("note").value,
  };
  const button = $("submit-review");
  button.disabled = true;
  status.textContent = "Submitting…";
  try {
    const result = await api("POST", `/v1/review/clips/${encodeURIComponent(clipId)}/reviews`, body);
    state.queue.lastReviewed = clipId;
    goToQueue();
    let agreement = "";
    if (result.agreement) {
      const a = result.agreement;
      agreement =
        ` Against the review you checked: caption ${a.caption_agrees ? "agrees" : "differs"}, ` +
        `${a.items_agreed} of ${a.items_compared} items agree.`;
    }
    flash(`Review ${result.review_id} saved: clip ${clipId} is now ${result.review_state}.${agreement}`);
  } catch (error) {
    if (error.code === "review_pending") {
      // Published, not yet applied by the catalog: it will be; the queue may show the old state for a while.
      state.queue.lastReviewed = clipId;
      goToQueue();
      flash(`Review sent; the catalog has not applied it yet (${error.message}). Reload the queue in a moment.`);
      return;
    }
    status.textContent = `Not saved: ${error.message}`;
    showSubmitProblems(error.problems || []);
  } finally {
    button.disabled = false;
  }
}

// A refused submit's problems go next to their fields: caption.* in the editor, items[n].* on the n-th item.
function showSubmitProblems(problems) {
  const captionProblems = [];
  const byItem = new Map();
  const rest = [];
  for (const problem of problems) {
    const path = problem.path || "";
    const item = /^items\[(\d+)\]\.?(.*)$/.exec(path);
    if (path.startsWith("caption.")) captionProblems.push({ ...problem, path: path.slice("caption.".length) });
    else if (item && state.items[Number(item[1])]) {
      const entry = state.items[Number(item[1])];
      if (!byItem.has(entry)) byItem.set(entry, []);
      byItem.get(entry).push({ ...problem, path: item[2].replace(/^item\./, "") });
    } else rest.push(problem);
  }
  if (captionProblems.length) {
    state.captionProblems = captionProblems;
    showCaptionProblems();
  }
  for (const [entry, itemProblems] of byItem) {
    entry.problems = itemProblems;
    if (!entry.editing && (entry.edited || entry.added)) entry.editing = true;
  }
  if (byItem.size) buildQA();
  const list = $("submit-problems");
  for (const problem of rest) list.append(el("li", { text: problem.path ? `${problem.path}: ${problem.message}` : problem.message }));
}

// The player from the keyboard anywhere on the clip but in a field: k plays or pauses, j / l go 1 s back / on,
// , / . one frame (the clip's fps).
function playerKeys(event) {
  if ($("clip").hidden || !state.view || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  if (target instanceof HTMLElement && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
  const video = $("video");
  const frame = 1 / (state.view.clip.fps || 25);
  const steps = { j: -1, l: 1, ",": -frame, ".": frame };
  if (event.key === "k") {
    if (video.paused) video.play();
    else video.pause();
  } else if (event.key in steps) {
    video.pause();
    const end = state.view.clip.end_s - state.view.clip.start_s;
    video.currentTime = Math.min(end, Math.max(0, video.currentTime + steps[event.key]));
  } else {
    return;
  }
  event.preventDefault();
}

// ---------------------------------------------------------------- start

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("signin-key").value.trim();
    $("signin-key").value = "";
    if (key && (await signIn(key))) route();
  });
  $("sign-out").addEventListener("click", signOut);
  $("filters").addEventListener("submit", applyFilters);
  $("queue-prev").addEventListener("click", () => {
    state.queue.offset = Math.max(0, state.queue.offset - QUEUE_PAGE);
    showQueue();
  });
  $("queue-next").addEventListener("click", () => {
    state.queue.offset += QUEUE_PAGE;
    showQueue();
  });
  for (const link of [$("home-link"), $("back-to-queue")]) {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      goToQueue();
    });
  }
  $("add-interaction").addEventListener("click", addInteraction);
  $("add-item").addEventListener("click", addItem);
  for (const [button, decision] of [["approve-rest", "approved"], ["reject-rest", "rejected"]]) {
    $(button).addEventListener("click", () => {
      for (const entry of state.items) if (!entry.decision) entry.decision = decision;
      buildQA();
    });
  }
  $("submit-review").addEventListener("click", submitReview);
  window.addEventListener("hashchange", route);
  document.addEventListener("keydown", playerKeys);
}

async function start() {
  wire();
  // A `#key=...` link signs in once; the key leaves the address bar (and the history) right away.
  const match = /^#key=([^&]*)/.exec(location.hash);
  if (match) {
    history.replaceState(null, "", location.pathname + location.search);
    if (await signIn(decodeURIComponent(match[1]))) route();
    return;
  }
  if (await restoreSession()) route();
  else showSignIn();
}

start();
