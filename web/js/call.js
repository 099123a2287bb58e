// The call page: one archived call with its audio player synced to the transcript (speaker
// lanes; clicking a line plays from there; the line being spoken is highlighted), coaching
// cards marked on the timeline, summary, metrics over time, exports.
//
// Two transcripts of the same call: the live one (what the agent saw during the call) and the
// transcript of record (second_pass/: the recording decoded again with the whole call as
// context). A switch over the speaker lanes shows either; the audio sync and the line clicks
// work the same on both (each line carries its own start and end).
//
// The audio element cannot send the token, so it plays a signed URL from
// POST /history/{id}/media-url (valid 120 s); when it expires mid-listening (a later Range
// request is refused), a fresh one is fetched and playback resumes where it was.

import "./history_strings.js";
import { h, clear } from "./dom.js";
import { t, translate, clock, percent, secs } from "./i18n.js";
import { takeToken, forgetToken, claims, tokenProblem, showSignIn, topBar, hashParams } from "./shell.js";
import { api, failure, download } from "./records.js";

const main = document.getElementById("main");
let token = null;
let call = null;
let audio = null;
let lines = [];
let current = null;
let view = "live"; // which transcript the lanes show: "live" or "record"
let linesList = null; // the <ol> of the lanes (replaced when the view changes)
let renewals = 0; // URL renewals since the audio last loaded: a missing file must not loop

const bar = topBar(document.getElementById("top"), {
  titleKey: "call.title",
  onSignOut: () => signIn(""),
  links: [["history.html", "history.toHistory"]],
});

function signIn(message) {
  forgetToken();
  bar.setWho(null);
  showSignIn(main, message, () => boot());
}

/** Seconds from the call's start at which a coaching event happened. */
function coachAt(ev) {
  const ref = ev.refs && ev.refs[0] && call.transcript.find((u) => u.utteranceId === ev.refs[0]);
  if (ref) return ref.end;
  const start = call.startedAt ? Date.parse(call.startedAt) : null;
  return start && ev.ts ? Math.max(0, (ev.ts - start) / 1000) : 0;
}

function length() {
  const last = call.transcript[call.transcript.length - 1];
  return Math.max(call.duration || 0, last ? last.end : 0, 1);
}

function seek(second) {
  if (!audio) return;
  audio.currentTime = second;
  audio.play().catch(() => {});
}

async function loadAudio(resumeAt) {
  const res = await api(token, `/history/${encodeURIComponent(call.callId)}/media-url`, { method: "POST" });
  if (!res.ok) return;
  const { url } = await res.json();
  audio.src = url;
  if (resumeAt) {
    audio.addEventListener("loadedmetadata", () => seek(resumeAt), { once: true });
  }
}

function highlight() {
  const now = audio.currentTime;
  const line = lines.find((l) => now >= l.start && now < l.end + 0.05) || null;
  if (line === current) return;
  current?.el.classList.remove("speaking");
  current = line;
  if (line) {
    line.el.classList.add("speaking");
    line.el.scrollIntoView({ block: "nearest" });
  }
}

function header() {
  const when = call.startedAt ? new Date(call.startedAt).toLocaleString() : "";
  return h(
    "section",
    { class: "panel call-head" },
    h("h1", { text: `${when} · ${t("history.agent")} ${call.agent ?? "?"}` }),
    h(
      "p",
      { class: "chips" },
      call.caller?.name || call.caller?.number
        ? h("span", { class: "chip", text: [call.caller.name, call.caller.number].filter(Boolean).join(" · ") })
        : null,
      call.duration != null ? h("span", { class: "chip", text: clock(call.duration) }) : null,
      call.reason ? h("span", { class: "chip", text: `${t("call.reason")}: ${call.reason}` }) : null,
      call.lang ? h("span", { class: "chip", text: call.lang }) : null,
    ),
    h(
      "p",
      { class: "exports" },
      h("span", { "data-i18n": "call.export" }),
      ["json", "vtt", "srt", "txt"].map((fmt) =>
        h("button", {
          type: "button",
          class: `export export-${fmt}`,
          text: fmt.toUpperCase(),
          onclick: () =>
            download(token, `/history/${encodeURIComponent(call.callId)}/export?format=${fmt}`, `${call.callId}.${fmt}`),
        }),
      ),
    ),
  );
}

function summary() {
  const s = call.summary;
  if (!s) return null;
  return h(
    "section",
    { class: "panel summary" },
    h("h2", { "data-i18n": "call.summary" }),
    h(
      "p",
      { class: "chips" },
      h("span", { class: "chip disposition", text: s.disposition.replace(/_/g, " ") }),
      h("span", { class: `chip sentiment-${s.sentiment}`, text: s.sentiment }),
    ),
    h("p", { text: s.text }),
    s.actionItems.length
      ? [h("h3", { "data-i18n": "call.actions" }), h("ul", {}, s.actionItems.map((a) => h("li", { text: a })))]
      : null,
  );
}

function timeline() {
  const total = length();
  return h(
    "div",
    { class: "timeline", "aria-hidden": "true" },
    call.coaching.map((ev) =>
      h("button", {
        type: "button",
        tabindex: "-1",
        class: `mark sev-${ev.severity}`,
        title: ev.text,
        style: { left: `${(100 * coachAt(ev)) / total}%` },
        onclick: () => seek(coachAt(ev)),
      }),
    ),
  );
}

function player() {
  const wrap = h("section", { class: "panel player" }, h("h2", { "data-i18n": "call.audio" }));
  if (!call.hasRecording) {
    wrap.append(h("p", { class: "muted", "data-i18n": "call.noAudio" }));
    return wrap;
  }
  audio = h("audio", { controls: true, preload: "metadata", class: "audio" });
  audio.addEventListener("timeupdate", highlight);
  audio.addEventListener("loadeddata", () => {
    renewals = 0;
  });
  audio.addEventListener("error", () => {
    // The signed URL lapsed (a later Range request was refused): once more with a fresh one.
    if (renewals++ < 2) loadAudio(audio.currentTime);
  });
  wrap.append(audio, timeline());
  return wrap;
}

/** The utterances of the transcript the switch shows. */
function shown() {
  return view === "record" ? call.recordTranscript.utterances : call.transcript;
}

function renderLines() {
  current = null;
  lines = shown().map((u) => {
    const el = h(
      "li",
      {
        class: `line lane-${u.speaker}`,
        tabindex: "0",
        dataset: { start: String(u.start), utteranceId: u.utteranceId },
        onclick: () => seek(u.start),
        onkeydown: (e) => (e.key === "Enter" || e.key === " ") && (e.preventDefault(), seek(u.start)),
      },
      h("span", { class: "at", text: clock(u.start) }),
      h("span", { class: "speaker", text: t(`speaker.${u.speaker}`) }),
      h("span", { class: "text", text: u.text }),
    );
    return { start: u.start, end: u.end, el };
  });
  clear(linesList, ...lines.map((l) => l.el));
  if (audio) highlight();
}

/** The "live / record" switch, or why the record is not there (pending, failed, none). */
function viewSwitch() {
  const record = call.recordTranscript;
  if (!record || record.status !== "done") {
    const key = !record ? "call.recordNone" : record.status === "failed" ? "call.recordFailed" : "call.recordPending";
    return h("p", { class: `muted record-status record-${record ? record.status : "none"}`, "data-i18n": key });
  }
  const buttons = ["live", "record"].map((name) =>
    h("button", {
      type: "button",
      class: `view view-${name}`,
      "aria-pressed": String(view === name),
      "data-i18n": name === "live" ? "call.viewLive" : "call.viewRecord",
      onclick: () => {
        if (view === name) return;
        view = name;
        for (const b of buttons) b.setAttribute("aria-pressed", String(b.classList.contains(`view-${name}`)));
        renderLines();
      },
    }),
  );
  return h(
    "p",
    { class: "view-switch", role: "group", "aria-label": t("call.view") },
    ...buttons,
    record.model ? h("span", { class: "chip record-model", text: t("call.recordModel", { model: record.model }) }) : null,
  );
}

function transcript() {
  linesList = h("ol", { class: "lines" });
  renderLines();
  return h(
    "section",
    { class: "panel transcript" },
    h("h2", { "data-i18n": "call.transcript" }),
    viewSwitch(),
    linesList,
  );
}

function coaching() {
  if (!call.coaching.length) return null;
  return h(
    "section",
    { class: "panel coaching" },
    h("h2", { "data-i18n": "call.coaching" }),
    h(
      "ul",
      { class: "cards" },
      call.coaching.map((ev) =>
        h(
          "li",
          { class: `card sev-${ev.severity} kind-${ev.kind}` },
          h("button", { type: "button", class: "at", text: clock(coachAt(ev)), onclick: () => seek(coachAt(ev)) }),
          h("span", { class: "text", text: ev.text }),
          ev.ruleId ? h("span", { class: "chip", text: ev.ruleId }) : null,
        ),
      ),
    ),
  );
}

function metrics() {
  const rows = call.metricsTimeline;
  if (!rows.length) return null;
  return h(
    "section",
    { class: "panel metrics" },
    h("h2", { "data-i18n": "call.metrics" }),
    h(
      "table",
      {},
      h(
        "thead",
        {},
        h("tr", {}, ["call.at", "call.talkAgent", "call.silence", "call.overtalk"].map((k) => h("th", { "data-i18n": k }))),
      ),
      h(
        "tbody",
        {},
        rows.map((m) =>
          h(
            "tr",
            {},
            h("td", { text: clock(m.callTime) }),
            h(
              "td",
              {},
              h("span", { class: "bar", style: { width: `${Math.round(100 * (m.talkRatio?.agent ?? 0))}%` } }),
              h("span", { text: percent(m.talkRatio?.agent ?? 0) }),
            ),
            h("td", { text: secs(m.longestSilence ?? 0) }),
            h("td", { text: secs(m.overtalk?.seconds ?? 0) }),
          ),
        ),
      ),
    ),
  );
}

async function boot() {
  translate(document);
  token = takeToken();
  const problem = token ? tokenProblem(token) : "";
  if (!token || problem) return signIn(problem ? t(problem) : "");
  bar.setWho(claims(token));
  const params = hashParams();
  const id = params.get("call");
  const res = await api(token, `/history/${encodeURIComponent(id || "")}`);
  if (res.status === 401) return signIn(t("signin.rejected", { reason: await failure(res) }));
  if (!res.ok) {
    clear(main, h("p", { class: "panel error", role: "alert", "data-i18n": res.status === 404 ? "call.notFound" : "" }, res.status === 404 ? "" : await failure(res)));
    translate(main);
    return;
  }
  call = await res.json();
  clear(
    main,
    h("p", {}, h("a", { href: "history.html", "data-i18n": "call.back" })),
    header(),
    h("div", { class: "call-grid" }, h("div", { class: "col" }, player(), transcript()), h("div", { class: "col" }, summary(), coaching(), metrics())),
  );
  translate(main);
  if (audio) {
    await loadAudio(Number(params.get("t")) || 0);
  } else if (params.get("t")) {
    const at = Number(params.get("t"));
    const line = lines.find((l) => at >= l.start && at <= l.end) || lines.find((l) => l.start >= at);
    line?.el.classList.add("speaking");
    line?.el.scrollIntoView({ block: "center" });
  }
}

boot();
