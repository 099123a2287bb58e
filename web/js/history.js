// The history page: search the call record (words, phrases, speaker) and filter it, results
// ranked with highlighted snippets and the second each hit was said, "more" pages through the
// cursor, CSV export of everything that matches. A supervisor sees every call; an agent only
// its own (the relay enforces it; the agent filter is hidden for them).

import "./history_strings.js";
import { h, clear, add } from "./dom.js";
import { t, translate, onLang, clock, percent } from "./i18n.js";
import { takeToken, forgetToken, claims, tokenProblem, showSignIn, topBar, hashParams, setHash } from "./shell.js";
import { api, failure, download, snippet } from "./records.js";

const DISPOSITIONS = [
  "completed",
  "resolved",
  "retained",
  "cancellation_requested",
  "escalated",
  "no_conversation",
  "unknown",
];
const SENTIMENTS = ["positive", "neutral", "negative", "mixed"];
const FIELDS = ["q", "speaker", "agent", "from", "to", "disposition", "sentiment", "rule", "minDuration", "maxDuration", "minSilence", "minTalk", "maxTalk"];

const main = document.getElementById("main");
let token = null;
let me = null;
let form = null;
let list = null;
let status = null;
let moreBtn = null;
let cursor = null;
let shown = 0;

const bar = topBar(document.getElementById("top"), {
  titleKey: "history.title",
  onSignOut: () => signIn(""),
  links: [
    ["wall.html", "console.toWall"],
    ["kb-report.html", "kbReport.toReport"],
  ],
});

function signIn(message) {
  forgetToken();
  bar.setWho(null);
  showSignIn(main, message, () => boot());
}

function field(name, labelKey, input) {
  input.id = `f-${name}`;
  input.name = name;
  return h("label", { class: "field", for: input.id }, h("span", { "data-i18n": labelKey }), input);
}

function select(name, values, labelKey) {
  return field(
    name,
    labelKey,
    h(
      "select",
      {},
      h("option", { value: "", "data-i18n": "history.any" }),
      values.map((v) => h("option", { value: v, text: v.replace(/_/g, " ") })),
    ),
  );
}

function number(name, labelKey, attrs = {}) {
  return field(name, labelKey, h("input", { type: "number", min: "0", step: "any", inputmode: "decimal", ...attrs }));
}

function buildForm() {
  const q = h("input", { type: "search", "data-i18n-placeholder": "history.searchHint", autocomplete: "off" });
  const speaker = h(
    "select",
    {},
    h("option", { value: "", "data-i18n": "history.speakerAny" }),
    ["customer", "agent"].map((s) => h("option", { value: s, "data-i18n": `speaker.${s}` })),
  );
  const f = h(
    "form",
    { class: "history-filters panel", role: "search" },
    h("div", { class: "row" }, field("q", "history.search", q), field("speaker", "history.speaker", speaker)),
    h(
      "div",
      { class: "row" },
      me.role === "supervisor" ? field("agent", "history.agent", h("input", { type: "text", size: "6" })) : null,
      field("from", "history.from", h("input", { type: "date" })),
      field("to", "history.to", h("input", { type: "date" })),
      select("disposition", DISPOSITIONS, "history.disposition"),
      select("sentiment", SENTIMENTS, "history.sentiment"),
      field("rule", "history.rule", h("input", { type: "text", size: "12" })),
    ),
    h(
      "div",
      { class: "row" },
      number("minDuration", "history.minDuration"),
      number("maxDuration", "history.maxDuration"),
      number("minSilence", "history.minSilence"),
      number("minTalk", "history.minTalk", { max: "100" }),
      number("maxTalk", "history.maxTalk", { max: "100" }),
      h("span", { class: "spacer" }),
      h("button", { type: "submit", class: "primary", "data-i18n": "history.submit" }),
      h("button", { type: "button", class: "csv", "data-i18n": "history.csv", onclick: exportCsv }),
    ),
  );
  f.addEventListener("submit", (e) => {
    e.preventDefault();
    search(true);
  });
  return f;
}

/** The API query of the form's filters (and the same, for the URL fragment). */
function query() {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const el = form.elements.namedItem(name);
    const value = el && el.value.trim();
    if (!value) continue;
    if (name === "minTalk") params.set("minAgentTalkRatio", String(Number(value) / 100));
    else if (name === "maxTalk") params.set("maxAgentTalkRatio", String(Number(value) / 100));
    else params.set(name, value);
  }
  return params;
}

function restore() {
  const params = hashParams();
  for (const name of FIELDS) {
    const el = form.elements.namedItem(name);
    if (el && params.has(name)) el.value = params.get(name);
  }
}

function remember() {
  const params = new URLSearchParams();
  for (const name of FIELDS) {
    const el = form.elements.namedItem(name);
    if (el && el.value.trim()) params.set(name, el.value.trim());
  }
  setHash(params);
}

function resultItem(call) {
  const when = call.startedAt ? new Date(call.startedAt).toLocaleString() : "";
  const href = (second) => `call.html#call=${encodeURIComponent(call.callId)}${second != null ? `&t=${second}` : ""}`;
  return h(
    "li",
    { class: "result", dataset: { callId: call.callId } },
    h(
      "div",
      { class: "result-head" },
      h("a", { class: "result-open", href: href(null), text: when || call.callId, "data-i18n-title": "history.open" }),
      h("span", { class: "chip agent", text: `${t("history.agent")} ${call.agent ?? "?"}` }),
      call.duration != null ? h("span", { class: "chip", text: clock(call.duration) }) : null,
      call.disposition ? h("span", { class: "chip disposition", text: call.disposition.replace(/_/g, " ") }) : null,
      call.sentiment ? h("span", { class: `chip sentiment-${call.sentiment}`, text: call.sentiment }) : null,
      call.agentTalkRatio != null ? h("span", { class: "chip", text: `${t("call.talkAgent")} ${percent(call.agentTalkRatio)}` }) : null,
      call.lang ? h("span", { class: "chip lang", text: call.lang }) : null,
    ),
    call.summary && !call.matches ? h("p", { class: "muted summary", text: call.summary }) : null,
    call.matches
      ? h(
          "ul",
          { class: "matches" },
          call.matches.map((m) =>
            h(
              "li",
              { class: `match speaker-${m.speaker}` },
              h("a", { class: "match-at", href: href(m.at), text: t("history.at", { t: clock(m.at) }) }),
              h("span", { class: "speaker", text: t(`speaker.${m.speaker}`) }),
              h("span", { class: "snippet" }, snippet(m.snippet)),
            ),
          ),
        )
      : null,
  );
}

async function search(fresh) {
  if (fresh) {
    cursor = null;
    shown = 0;
    clear(list);
    remember();
  }
  const params = query();
  if (cursor) params.set("cursor", cursor);
  status.textContent = "…";
  const res = await api(token, `/history?${params}`);
  if (res.status === 401) return signIn(t("signin.rejected", { reason: await failure(res) }));
  if (!res.ok) {
    status.textContent = t("history.error", { reason: await failure(res) });
    return;
  }
  const body = await res.json();
  add(list, body.calls.map(resultItem));
  shown += body.calls.length;
  cursor = body.nextCursor;
  moreBtn.hidden = !cursor;
  status.textContent = shown ? t("history.count", { n: shown + (cursor ? "+" : "") }) : t("history.none");
  if (shown && body.order === "recent") status.textContent += ` · ${t("history.recent")}`;
  translate(list);
}

async function exportCsv() {
  try {
    await download(token, `/history/export.csv?${query()}`, "calls.csv");
  } catch (err) {
    status.textContent = t("history.error", { reason: err.message });
  }
}

function boot() {
  translate(document);
  token = takeToken();
  const problem = token ? tokenProblem(token) : "";
  if (!token || problem) return signIn(problem ? t(problem) : "");
  me = claims(token);
  bar.setWho(me);
  form = buildForm();
  list = h("ol", { class: "results", "aria-live": "polite" });
  status = h("p", { class: "muted status", role: "status" });
  moreBtn = h("button", { type: "button", class: "more", hidden: true, "data-i18n": "history.more", onclick: () => search(false) });
  clear(main, form, status, list, moreBtn);
  translate(main);
  restore();
  search(true);
}

onLang(() => {
  if (list) search(true);
});
boot();
