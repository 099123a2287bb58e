// The supervisor wall: every active call as a tile, most urgent first; pick one to follow its
// transcript and coaching live (a CallView on its own `callId=<id>` feed).

import "./history_strings.js";
import { h, clear, shorten, serverClock } from "./dom.js";
import { t, translate, onLang, clock } from "./i18n.js";
import { Feed, State } from "./feed.js";
import { CallView, SEV_RANK } from "./callview.js";
import {
  hashParams,
  setHash,
  takeToken,
  forgetToken,
  claims,
  tokenProblem,
  showSignIn,
  topBar,
  notice,
} from "./shell.js";

const ENDED_KEEP_MS = 60_000; // an ended call stays on the wall this long, greyed out
const ALERT_SEVERITIES = new Set(["warning", "critical"]);

const main = document.getElementById("main");
const noticeEl = document.getElementById("notice");
let feed = null;
let detailFeed = null;
let view = null;
let selected = null;
let calls = new Map(); // callId -> tile state
let grid = null;
let countEl = null;
let detail = null;
let detailConn = null;
let renderQueued = false;
let token = null;
let detailState = { state: State.CLOSED, info: {} };

const bar = topBar(document.getElementById("top"), {
  titleKey: "wall.title",
  onSignOut: () => signIn(""),
  links: [
    ["history.html", "history.toHistory"],
    ["kb-report.html", "kbReport.toReport"],
  ],
});

function signIn(message) {
  closeDetail();
  feed?.stop();
  feed = null;
  view?.destroy();
  view = null;
  grid = null;
  detail = null;
  forgetToken();
  bar.setWho(null);
  bar.setConn(State.CLOSED);
  notice(noticeEl, null);
  showSignIn(main, message, () => boot());
}

function boot() {
  translate(document);
  token = takeToken();
  const problem = token ? tokenProblem(token) : null;
  if (!token || problem) {
    signIn(problem ? t(problem) : "");
    return;
  }
  const me = claims(token);
  bar.setWho(me);
  if (me.role !== "supervisor") {
    clear(
      main,
      h(
        "div",
        { class: "panel waiting", role: "alert" },
        h("p", { class: "big", "data-i18n": "wall.agentOnly" }),
        h("a", { href: "./", "data-i18n": "wall.toConsole" }),
      ),
    );
    translate(main);
    return;
  }
  calls = new Map();
  countEl = h("p", { class: "wall-count", role: "status" });
  grid = h("ul", { class: "tiles", "aria-label": t("wall.title") });
  detailConn = h("span", { class: "conn small", dataset: { state: "closed" } });
  const closeBtn = h("button", {
    type: "button",
    class: "close",
    "data-i18n": "wall.close",
    onclick: () => closeDetail(true),
  });
  const stage = h("div", { class: "detail-stage" });
  detail = h(
    "section",
    { class: "detail", hidden: true, "aria-label": "call" },
    h("div", { class: "detail-bar" }, detailConn, h("span", { class: "spacer" }), closeBtn),
    stage,
  );
  const placeholder = h("p", { class: "detail-placeholder muted", "data-i18n": "wall.select" });
  clear(
    main,
    h(
      "div",
      { class: "wall" },
      h("section", { class: "wall-list" }, countEl, grid),
      h("div", { class: "detail-col" }, placeholder, detail),
    ),
  );
  view = new CallView(stage);
  translate(main);
  feed = new Feed({
    callId: "*",
    token,
    onEvent: onWallEvent,
    onState: (state, info) => {
      bar.setConn(state, info);
      if (state === State.UNAUTHORIZED) signIn(t("signin.rejected", { reason: info.reason || info.code }));
    },
    onNotice: () => notice(noticeEl, "notice.gap"),
  }).start();
  window.coachFeed = feed;
  const want = hashParams().get("call");
  if (want) select(want);
  render();
}

// -- tiles ----------------------------------------------------------------------------------------

function tileOf(callId) {
  let c = calls.get(callId);
  if (!c) {
    c = { id: callId, started: null, ended: null, last: null, alerts: 0, worst: null, el: null, rec: null };
    calls.set(callId, c);
  }
  return c;
}

function onWallEvent(ev, live) {
  if (live) serverClock.observe(ev.ts);
  const c = tileOf(ev.callId);
  switch (ev.type) {
    case "call.started":
      c.started = ev;
      break;
    case "call.ended":
      c.ended = ev;
      c.endedLocal = Date.now();
      break;
    case "call.recording":
      c.rec = ev.state; // a paused recording is flagged on the tile
      break;
    case "partial":
    case "final":
      if (!c.last || ev.type === "final" || c.last.utteranceId === ev.utteranceId || !c.last.partial) {
        c.last = {
          speaker: ev.speaker,
          text: ev.text,
          partial: ev.type === "partial",
          utteranceId: ev.utteranceId,
        };
      }
      break;
    case "coach":
      if (ALERT_SEVERITIES.has(ev.severity)) c.alerts += 1;
      if (ev.severity in SEV_RANK && (c.worst === null || SEV_RANK[ev.severity] > SEV_RANK[c.worst]))
        c.worst = ev.severity;
      break;
    default:
      break;
  }
  queueRender();
}

function queueRender() {
  if (renderQueued) return;
  renderQueued = true;
  requestAnimationFrame(() => {
    renderQueued = false;
    render();
  });
}

function elapsed(c) {
  const s = c.started;
  if (!s) return 0;
  const start = typeof s.startedAt === "number" ? s.startedAt : s.ts;
  const end = c.ended ? (c.ended.endedAt ?? c.ended.ts) : serverClock.now();
  return Math.max(0, (end - start) / 1000);
}

/** Most urgent first: active calls, worst alert, more alerts, longer call. */
function urgency(a, b) {
  return (
    (a.ended ? 1 : 0) - (b.ended ? 1 : 0) ||
    (SEV_RANK[b.worst] ?? -1) - (SEV_RANK[a.worst] ?? -1) ||
    b.alerts - a.alerts ||
    elapsed(b) - elapsed(a) ||
    a.id.localeCompare(b.id)
  );
}

function fillTile(c) {
  const s = c.started;
  const caller = (s && s.caller) || {};
  const name = caller.name || caller.number || c.id;
  if (!c.el) {
    c.button = h("button", {
      type: "button",
      class: "tile",
      dataset: { call: c.id },
      onclick: () => select(c.id),
    });
    c.el = h("li", {}, c.button);
  }
  const sev = c.worst || "none";
  c.button.className = `tile sev-${sev}${c.ended ? " ended" : ""}${selected === c.id ? " selected" : ""}`;
  c.button.setAttribute("aria-pressed", String(selected === c.id));
  c.button.title = t("wall.follow", { caller: name });
  c.button.dataset.severity = sev;
  const last = c.last;
  const sig = JSON.stringify([
    c.button.className,
    name,
    s && s.agent,
    caller.number,
    last,
    c.alerts,
    c.worst,
    !!c.ended,
    c.rec,
  ]);
  if (sig === c.sig && c.durEl) {
    if (!c.ended) c.durEl.textContent = clock(elapsed(c)); // only the clock moved
    return;
  }
  c.sig = sig;
  c.durEl = h("span", { class: "dur", text: c.ended ? t("wall.ended") : clock(elapsed(c)) });
  const alertText =
    c.alerts === 0
      ? t("wall.noAlerts")
      : c.alerts === 1
        ? t("wall.alertsOne")
        : t("wall.alerts", { n: c.alerts });
  clear(
    c.button,
    h("span", { class: "tile-top" }, h("span", { class: "caller", text: name }), c.durEl),
    h(
      "span",
      { class: "tile-meta" },
      s ? h("span", { class: "agent", text: `${t("call.agent")} ${s.agent}` }) : null,
      caller.name && caller.number ? h("span", { class: "number", text: caller.number }) : null,
      c.rec === "paused" && !c.ended ? h("span", { class: "rec-paused", text: t("wall.recPaused") }) : null,
    ),
    h(
      "span",
      { class: `last${last && last.partial ? " partial" : ""}` },
      last
        ? [
            h("span", {
              class: "spk",
              text: `${t(`speaker.${last.speaker in { agent: 1, customer: 1 } ? last.speaker : "mix"}`)}: `,
            }),
            shorten(last.text, 110),
          ]
        : t("wall.noLine"),
    ),
    h(
      "span",
      { class: `alerts sev-${sev}`, dataset: { count: c.alerts } },
      h("span", { class: "alert-count", text: alertText }),
      c.alerts ? h("span", { class: "alert-sev", text: t(`sev.${c.worst}`) }) : null,
    ),
  );
}

function render() {
  if (!grid) return;
  const now = Date.now();
  for (const [id, c] of calls) {
    // Calls we only know from stray events (no call.started) are not shown; ended ones fade out.
    if (c.ended && now - c.endedLocal > ENDED_KEEP_MS && id !== selected) {
      c.el?.remove();
      calls.delete(id);
    }
  }
  const shown = [...calls.values()].filter((c) => c.started).sort(urgency);
  for (const c of shown) fillTile(c);
  const wanted = shown.map((c) => c.el);
  const inOrder = wanted.length === grid.children.length && wanted.every((el, i) => grid.children[i] === el);
  if (!inOrder) {
    const focused = document.activeElement;
    grid.replaceChildren(...wanted);
    if (focused && grid.contains(focused)) focused.focus();
  }
  const active = shown.filter((c) => !c.ended).length;
  countEl.textContent =
    active === 0 ? t("wall.empty") : active === 1 ? t("wall.countOne") : t("wall.count", { n: active });
}

// -- detail ---------------------------------------------------------------------------------------

function select(callId) {
  if (selected === callId && detailFeed) return;
  closeDetail(false);
  selected = callId;
  const params = hashParams();
  params.set("call", callId);
  setHash(params);
  detail.hidden = false;
  document.body.classList.add("has-detail");
  view.reset(callId);
  detailFeed = new Feed({
    callId,
    token,
    onEvent: (ev, live) => view.apply(ev, live),
    onNotice: () => notice(noticeEl, "notice.gap"),
    onState: (state, info) => {
      detailState = { state, info };
      renderDetailConn();
      if (state === State.REFUSED) view.refuse(info.why, info.reason);
      if (state === State.UNAUTHORIZED) signIn(t("signin.rejected", { reason: info.reason || info.code }));
    },
  }).start();
  render();
}

function renderDetailConn() {
  const { state, info } = detailState;
  const s = info.retryAt ? Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000)) : 0;
  detailConn.dataset.state = state;
  detailConn.textContent = t(state === State.RECONNECTING && !s ? "conn.retrying" : `conn.${state}`, { s });
}

function closeDetail(refocus = false) {
  detailFeed?.stop();
  detailFeed = null;
  const was = selected;
  selected = null;
  if (!detail) return;
  detail.hidden = true;
  document.body.classList.remove("has-detail");
  const params = hashParams();
  params.delete("call");
  setHash(params);
  render();
  if (refocus && was) calls.get(was)?.button?.focus();
}

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && selected) closeDetail(true);
});
onLang(() => {
  for (const c of calls.values()) c.sig = null;
  render();
  if (detailConn) renderDetailConn();
});
setInterval(() => {
  bar.tick();
  view?.tick();
  if (detailFeed && detailState.state === State.RECONNECTING) renderDetailConn();
  render();
}, 1000);
boot();
