// The agent console: sign in, follow the agent's current call (or the call in `#call=<id>`),
// show it live through a CallView.

import "./history_strings.js";
import { h, clear } from "./dom.js";
import { t, translate } from "./i18n.js";
import { Feed, State, idAfter } from "./feed.js";
import { CallView } from "./callview.js";
import { KBPanel, setToken as setKbToken } from "./kb.js";
import {
  hashParams,
  takeToken,
  forgetToken,
  claims,
  tokenProblem,
  showSignIn,
  topBar,
  notice,
} from "./shell.js";

const LAST_CALL_KEY = "coach.lastCall";
const MAX_CALLS = 5; // calls whose events are kept in memory (the current one and a few others)
const MAX_EVENTS = 5000; // per kept call; partials are dropped first past this

const main = document.getElementById("main");
const noticeEl = document.getElementById("notice");
let feed = null;
let view = null;
let kbPanel = null;
let calls = new Map(); // callId -> {id, started, ended, events}
let current = null;
let pinned = null;
let waiting = null;
let fetchedLast = false;

const bar = topBar(document.getElementById("top"), {
  titleKey: "console.title",
  onSignOut: () => signIn(""),
  links: [["history.html", "history.toHistory"]],
});

function stopFeed() {
  feed?.stop();
  feed = null;
}

function signIn(message) {
  stopFeed();
  view?.destroy();
  view = null;
  forgetToken();
  sessionStorage.removeItem(LAST_CALL_KEY);
  bar.setWho(null);
  bar.setConn(State.CLOSED);
  notice(noticeEl, null);
  showSignIn(main, message, () => boot());
}

function boot() {
  translate(document);
  const token = takeToken();
  const problem = token ? tokenProblem(token) : null;
  if (!token || problem) {
    signIn(problem ? t(problem) : "");
    return;
  }
  const me = claims(token);
  pinned = hashParams().get("call");
  if (me.role === "supervisor" && !pinned) {
    location.replace("wall.html");
    return;
  }
  bar.setWho(me);
  calls = new Map();
  current = null;
  fetchedLast = false;
  clear(main);
  view = new CallView(main);
  setKbToken(token);
  kbPanel?.destroy();
  kbPanel = new KBPanel(main);
  waiting = h(
    "div",
    { class: "waiting panel", role: "status" },
    h("p", { class: "big", "data-i18n": "console.waiting" }),
    h("p", { class: "muted", "data-i18n": "console.waitingHint" }),
  );
  main.append(waiting);
  translate(main);
  if (pinned) {
    view.reset(pinned);
    showWaiting(false);
  } else {
    showWaiting(true);
  }
  feed = new Feed({
    callId: pinned || "*",
    token,
    onEvent: pinned ? (ev, live) => view.apply(ev, live) : track,
    onState: (state, info) => onState(state, info, token),
    onNotice: () => notice(noticeEl, "notice.gap"),
  }).start();
  window.coachFeed = feed; // for diagnostics in the browser console
}

function onState(state, info, token) {
  bar.setConn(state, info);
  if (state === State.UNAUTHORIZED) {
    signIn(t("signin.rejected", { reason: info.reason || info.code }));
  } else if (state === State.REFUSED) {
    showWaiting(false);
    view.refuse(info.why, info.reason, { href: "#", key: "console.backToMine" });
  } else if (state === State.LIVE && !pinned && !current && !fetchedLast) {
    fetchedLast = true;
    showLastCall(token);
  }
}

function showWaiting(on) {
  waiting.hidden = !on;
  view.el.hidden = on;
}

// -- following the agent's calls on the `*` feed ------------------------------------------------

function track(ev, live) {
  let c = calls.get(ev.callId);
  if (!c) {
    c = { id: ev.callId, started: null, ended: false, events: [] };
    calls.set(ev.callId, c);
  }
  if (ev.type === "call.started") c.started = ev;
  if (ev.type === "call.ended") c.ended = true;
  c.events.push(ev);
  if (c.events.length > MAX_EVENTS)
    c.events = c.events.filter((e) => e.type !== "partial").slice(-MAX_EVENTS);
  const next = pickCurrent();
  if (next !== current) switchTo(next, live);
  else if (ev.callId === current) view.apply(ev, live);
  prune();
}

/** The newest active call; else stay on the current one (to show its summary). */
function pickCurrent() {
  let best = null;
  for (const c of calls.values()) {
    if (c.started && !c.ended && (!best || idAfter(c.started.id, best.started.id))) best = c;
  }
  if (best) return best.id;
  return current;
}

function switchTo(callId, live) {
  current = callId;
  view.reset(callId);
  showWaiting(!callId);
  if (!callId) return;
  sessionStorage.setItem(LAST_CALL_KEY, callId);
  for (const ev of calls.get(callId).events) view.apply(ev, live);
}

function prune() {
  if (calls.size <= MAX_CALLS) return;
  for (const id of calls.keys()) {
    if (calls.size <= MAX_CALLS) break;
    if (id !== current && calls.get(id).ended) calls.delete(id);
  }
}

/** After a reload with no call in progress: show the last call this tab followed (summary). */
async function showLastCall(token) {
  const id = sessionStorage.getItem(LAST_CALL_KEY);
  if (!id) return;
  try {
    const res = await fetch(`/calls/${encodeURIComponent(id)}/events`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (!res.ok) return;
    const { events } = await res.json();
    if (current || !Array.isArray(events) || !events.length || feed.lastByCall.has(id)) return;
    calls.set(id, {
      id,
      started: events.find((e) => e.type === "call.started") || null,
      ended: events.some((e) => e.type === "call.ended"),
      events,
    });
    switchTo(id, false);
  } catch {
    // best effort: the console still follows the next call
  }
}

document.addEventListener("keydown", (e) => {
  if (e.key === "End" && e.altKey && view) view.jumpToLive();
});
setInterval(() => {
  view?.tick();
  bar.tick();
}, 1000);
window.addEventListener("hashchange", () => {
  if ((hashParams().get("call") || null) !== pinned || hashParams().get("token")) {
    stopFeed();
    view?.destroy();
    view = null;
    boot();
  }
});
boot();
