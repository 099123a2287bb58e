// One call on screen: header, live transcript, coaching cards, metrics and summary.
// Used by the agent console (its current call) and by the supervisor wall (the call a
// supervisor follows). Feed it bus events with `apply(ev, live)`; it owns its DOM.

import { h, clear, add, shorten, serverClock } from "./dom.js";
import { t, onLang, clock, secs, percent } from "./i18n.js";
import { readMetrics } from "./metrics.js";
import { RecordingControl } from "./recording.js";
import { knowledgeParts, patchAnswer } from "./kb.js";

export const SEV_RANK = Object.freeze({ info: 0, warning: 1, critical: 2 });
const STICK_PX = 48; // this close to the bottom counts as "following live"
const LONG_SILENCE_S = 10; // the silence timer turns amber from here
const FLASH_MS = 2500;

function speakerKey(speaker) {
  return speaker === "agent" || speaker === "customer" ? speaker : "mix";
}

/** An enum value of an event in the reader's language (`disposition.retained`); a value
 * this console has no label for is shown as sent. */
function enumLabel(group, value) {
  if (!value) return "—";
  const key = `${group}.${value}`;
  const text = t(key);
  return text === key ? String(value) : text;
}

// STT masks personal data as `[kind]` (DESIGN.md `redactions`); shown in the reader's language.
const MASK = /\[(card|cvv|expiry|national_id|iban|phone|email|dob)\]/g;

/** A transcript line as nodes: each `[kind]` a marked span naming the kind in the UI language. */
function maskedParts(text) {
  const out = [];
  let at = 0;
  for (const m of text.matchAll(MASK)) {
    out.push(text.slice(at, m.index));
    const kind = m[1];
    out.push(h("span", { class: "redacted", dataset: { kind }, title: t("redact.title"), text: t(`redact.${kind}`) }));
    at = m.index + m[0].length;
  }
  out.push(text.slice(at));
  return out;
}

/** The same line as plain text (quotes on coaching cards). */
function maskedText(text) {
  return text.replace(MASK, (_, kind) => t(`redact.${kind}`));
}

function sentimentClass(value) {
  const s = String(value || "").toLowerCase();
  if (/neg|insatisf|angry|enfad/.test(s)) return "neg";
  if (/pos|satisf/.test(s)) return "pos";
  return "neu";
}

export class CallView {
  /** @param {HTMLElement} root  where the view is mounted */
  constructor(root) {
    this.root = root;
    this.offLang = onLang(() => this.relabel());
    this.el = h("section", { class: "call", "aria-label": "call" });
    root.append(this.el);
    this.recording = new RecordingControl(); // recording state + pause/resume (recording.js)
    this.reset(null);
  }

  /** Forget everything and show call `callId` (or nothing). */
  reset(callId) {
    this.callId = callId;
    this.started = null;
    this.ended = null;
    this.summary = null;
    this.metrics = null;
    this.bubbles = new Map(); // utteranceId -> {el, text, speaker, start, final}
    this.order = []; // utteranceIds in transcript order (by start time)
    this.cards = new Map(); // coach event id -> {ev, el, acked}
    this.refIndex = new Map(); // utteranceId -> Set of card ids citing it
    this.byCardId = new Map(); // knowledge cardId -> card (a later event replaces its content)
    this.kbMarks = new Map(); // knowledge cardId -> useful (the agent's feedback)
    this.lastSpeechTs = null;
    this.stick = true;
    this.unseen = 0;
    this.refused = null;
    this.recording.reset(callId);
    this._build();
  }

  _build() {
    const el = clear(this.el);
    el.classList.remove("is-refused");
    this.head = h("header", { class: "call-head" });
    this.scroller = h("div", { class: "scroller", tabindex: "0" });
    this.list = h("ol", { class: "transcript", role: "log", "aria-live": "polite" });
    this.emptyNote = h("p", { class: "muted empty-note", "data-i18n": "transcript.empty" });
    this.scroller.append(this.emptyNote, this.list);
    this.scroller.addEventListener("scroll", () => this._onScroll(), { passive: true });
    this.resizeObserver?.disconnect();
    this.resizeObserver = new ResizeObserver(() => this._onResize());
    this.resizeObserver.observe(this.scroller);
    this.resizeObserver.observe(this.list);
    this.jump = h("button", {
      class: "jump",
      type: "button",
      hidden: true,
      onclick: () => this.jumpToLive(),
    });
    this.metricsEl = h("section", { class: "panel metrics" });
    this.summaryEl = h("section", { class: "panel summary", hidden: true, "aria-live": "polite" });
    this.pinned = h("div", { class: "pinned" });
    this.cardList = h("div", { class: "cards" });
    this.coachEmpty = h("p", { class: "muted", "data-i18n": "coach.empty" });
    const coach = h(
      "section",
      { class: "panel coaching" },
      h("h2", { "data-i18n": "coach.title" }),
      this.pinned,
      this.coachEmpty,
      this.cardList,
    );
    el.append(
      this.head,
      h(
        "div",
        { class: "call-body" },
        h(
          "section",
          { class: "transcript-pane" },
          h("h2", { class: "sr-only", "data-i18n": "transcript.title" }),
          this.scroller,
          this.jump,
        ),
        h("aside", { class: "side" }, this.summaryEl, this.metricsEl, coach),
      ),
    );
    this.relabel();
  }

  /** Re-render every language-dependent part (after a language switch). */
  relabel() {
    for (const node of this.el.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    if (this.refused) {
      this._renderRefused();
      return;
    }
    this._renderHead();
    this.recording.render();
    for (const b of this.bubbles.values()) this._fillBubble(b);
    for (const c of this.cards.values()) this._fillCard(c);
    this._renderSummary();
    this._renderMetrics();
    this._renderJump();
  }

  /** Show that the call may not be seen, and nothing of it. */
  refuse(why, reason, action = null) {
    this.reset(this.callId);
    this.refused = { why, reason, action };
    this._renderRefused();
  }

  _renderRefused() {
    const { why, reason, action } = this.refused;
    const text =
      why === "forbidden"
        ? t("refused.forbidden")
        : why === "unknown"
          ? t("refused.unknown")
          : t("refused.bad", { reason: reason || why });
    this.el.classList.add("is-refused");
    const link = action ? h("a", { href: action.href, text: t(action.key) }) : null;
    clear(this.el, h("div", { class: "refused", role: "alert", dataset: { why } }, h("p", { text }), link));
  }

  /** Take one bus event (`live`: it arrived after the replay). */
  apply(ev, live = false) {
    if (this.refused || (this.callId && ev.callId !== this.callId)) return;
    if (live) serverClock.observe(ev.ts);
    switch (ev.type) {
      case "call.started":
        this.started = ev;
        this._renderHead();
        break;
      case "call.recording":
        this.recording.apply(ev);
        break;
      case "call.ended":
        this.ended = ev;
        this.recording.apply(ev);
        this._renderHead();
        this._renderSummary();
        this._renderMetrics();
        break;
      case "partial":
      case "final":
        this._utterance(ev);
        break;
      case "coach":
        this._coach(ev);
        break;
      case "summary":
        this.summary = ev;
        this._renderSummary();
        break;
      case "metrics":
        this.metrics = { ...readMetrics(ev), at: ev.ts };
        this._renderMetrics();
        break;
      default:
        break; // unknown types are ignored (contract)
    }
  }

  /** Update the clocks (call timer, silence); called once a second. */
  tick() {
    if (this.refused) return;
    this._renderTimer();
    this._renderMetrics();
  }

  destroy() {
    this.offLang();
    this.resizeObserver?.disconnect();
    this.el.remove();
  }

  // -- header ---------------------------------------------------------------------------------

  _startedAt() {
    const s = this.started;
    if (!s) return null;
    return typeof s.startedAt === "number" ? s.startedAt : (s.ts ?? null);
  }

  _elapsed() {
    const start = this._startedAt();
    if (start === null) return null;
    const end = this.ended ? (this.ended.endedAt ?? this.ended.ts) : serverClock.now();
    return Math.max(0, (end - start) / 1000);
  }

  _renderHead() {
    const s = this.started;
    const caller = (s && s.caller) || {};
    const status = this.ended
      ? this.ended.reason
        ? t("call.endedReason", { reason: this.ended.reason })
        : t("call.ended")
      : t("call.live");
    this.timerEl = h("span", { class: "timer", "aria-label": t("call.duration") });
    clear(
      this.head,
      h(
        "div",
        { class: "who-called" },
        h("span", { class: "label", text: t("call.caller") }),
        h("strong", { class: "caller-name", text: caller.name || caller.number || "—" }),
        caller.name && caller.number ? h("span", { class: "caller-number", text: caller.number }) : null,
      ),
      h(
        "div",
        { class: "head-meta" },
        s ? h("span", { class: "agent-id", text: `${t("call.agent")} ${s.agent}` }) : null,
        s || this.ended
          ? h("span", { class: `pill ${this.ended ? "ended" : "active"}`, text: status })
          : null,
        this.recording.el,
        this.timerEl,
      ),
    );
    this._renderTimer();
  }

  _renderTimer() {
    if (!this.timerEl) return;
    const e = this._elapsed();
    this.timerEl.textContent = e === null ? "—" : clock(e);
  }

  // -- transcript -----------------------------------------------------------------------------

  _utterance(ev) {
    const id = ev.utteranceId;
    if (typeof id !== "string") return;
    if (typeof ev.ts === "number") this.lastSpeechTs = Math.max(this.lastSpeechTs ?? 0, ev.ts);
    let b = this.bubbles.get(id);
    if (b && b.final && ev.type === "partial") return; // a late partial never undoes a final
    const isNew = !b;
    if (!b) {
      b = { id, el: h("li", { class: "bubble", dataset: { utt: id } }), start: Number(ev.start) || 0 };
      b.who = h("div", { class: "who" });
      b.textEl = h("p", { class: "text" });
      b.el.append(b.who, b.textEl);
      this.bubbles.set(id, b);
      this._insert(b);
    }
    b.speaker = speakerKey(ev.speaker);
    b.text = String(ev.text ?? "");
    b.final = ev.type === "final";
    b.start = Number(ev.start) || b.start;
    b.dur = b.final ? Math.max(0, (Number(ev.end) || 0) - (Number(ev.start) || 0)) : 0;
    this._fillBubble(b);
    this.emptyNote.hidden = true;
    if (b.final) {
      // Cards citing this line can now quote it.
      for (const cardId of this.refIndex.get(id) || []) this._fillCard(this.cards.get(cardId));
      this._renderMetrics();
    }
    this._follow(isNew);
  }

  _insert(b) {
    // Keep transcript order by start time; new lines nearly always go last.
    let i = this.order.length;
    while (i > 0 && this.bubbles.get(this.order[i - 1]).start > b.start) i -= 1;
    const before = i < this.order.length ? this.bubbles.get(this.order[i]).el : null;
    this.list.insertBefore(b.el, before);
    this.order.splice(i, 0, b.id);
  }

  _fillBubble(b) {
    b.el.className = `bubble ${b.speaker} ${b.final ? "final" : "partial"}`;
    b.el.dataset.speaker = b.speaker;
    b.el.setAttribute("aria-busy", b.final ? "false" : "true");
    const flags = this.refIndex.get(b.id);
    let worst = -1;
    for (const cardId of flags || []) {
      const c = this.cards.get(cardId);
      if (c) worst = Math.max(worst, SEV_RANK[c.ev.severity] ?? 0);
    }
    if (worst >= 0) b.el.dataset.flag = Object.keys(SEV_RANK)[worst];
    else delete b.el.dataset.flag;
    clear(
      b.who,
      h("span", { class: "spk", text: t(`speaker.${b.speaker}`) }),
      h("time", { text: clock(b.start) }),
    );
    clear(b.textEl, maskedParts(b.text));
  }

  _onScroll() {
    const sc = this.scroller;
    const atBottom = sc.scrollHeight - sc.scrollTop - sc.clientHeight < STICK_PX;
    // A scroll caused by layout (window resized, text reflowed) is not the agent scrolling
    // back: only a scroll with unchanged sizes may stop the following.
    const resized = sc.scrollHeight !== this.seenHeight || sc.clientHeight !== this.seenClient;
    if (atBottom) {
      this.stick = true;
      this.unseen = 0;
    } else if (!resized) {
      this.stick = false;
    } else if (this.stick) {
      sc.scrollTop = sc.scrollHeight;
    }
    this._remember();
    this._renderJump();
  }

  _remember() {
    this.seenHeight = this.scroller.scrollHeight;
    this.seenClient = this.scroller.clientHeight;
  }

  _follow(isNew) {
    if (this.stick) {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    } else if (isNew) {
      this.unseen += 1;
    }
    this._remember();
    this._renderJump();
  }

  _onResize() {
    if (this.stick) this.scroller.scrollTop = this.scroller.scrollHeight;
    this._remember();
    this._renderJump();
  }

  /** Scroll to the newest line and keep following. */
  jumpToLive() {
    this.stick = true;
    this.unseen = 0;
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this._renderJump();
  }

  _renderJump() {
    const sc = this.scroller;
    this.jump.hidden = this.stick || sc.scrollHeight <= sc.clientHeight;
    this.jump.textContent = this.unseen ? t("transcript.jumpNew", { n: this.unseen }) : t("transcript.jump");
  }

  /** Bring utterance `id` into view and highlight it (from a coaching card). */
  showUtterance(id) {
    const b = this.bubbles.get(id);
    if (!b) return;
    b.el.scrollIntoView({ block: "center" });
    this._onScroll(); // following live only if the line is at the bottom anyway
    b.el.classList.remove("flash");
    void b.el.offsetWidth; // restart the animation
    b.el.classList.add("flash");
    setTimeout(() => b.el.classList.remove("flash"), FLASH_MS);
    this._renderJump();
  }

  _highlight(refs, on) {
    for (const id of refs) this.bubbles.get(id)?.el.classList.toggle("ref-hi", on);
  }

  // -- coaching -------------------------------------------------------------------------------

  _coach(ev) {
    const key = ev.id || `${ev.ts}-${ev.text}`;
    if (this.cards.has(key)) return;
    const same = typeof ev.cardId === "string" ? this.byCardId.get(ev.cardId) : null;
    if (same) {
      // DESIGN.md: a later event with the same cardId (the LLM's answer) replaces the card.
      same.ev = { ...same.ev, ...ev, id: same.ev.id, severity: same.ev.severity, refs: same.ev.refs };
      if (ev.source === "kb" && patchAnswer(same.el, same.ev)) return; // streamed: in place
      this._fillCard(same);
      return;
    }
    const refs = Array.isArray(ev.refs) ? ev.refs.filter((r) => typeof r === "string") : [];
    const severity = ev.severity in SEV_RANK ? ev.severity : "info";
    const c = { key, ev: { ...ev, severity, refs }, acked: false };
    c.el = h("article", {
      class: `card sev-${severity}`,
      dataset: { id: key, severity, kind: ev.kind || "tip" },
      onmouseenter: () => this._highlight(refs, true),
      onmouseleave: () => this._highlight(refs, false),
      onfocusin: () => this._highlight(refs, true),
      onfocusout: () => this._highlight(refs, false),
    });
    this.cards.set(key, c);
    if (typeof ev.cardId === "string") this.byCardId.set(ev.cardId, c);
    for (const r of refs) {
      if (!this.refIndex.has(r)) this.refIndex.set(r, new Set());
      this.refIndex.get(r).add(key);
      const b = this.bubbles.get(r);
      if (b) this._fillBubble(b);
    }
    this._fillCard(c);
    if (severity === "critical") {
      c.el.setAttribute("role", "alert");
      this.pinned.prepend(c.el);
    } else {
      this.cardList.prepend(c.el);
    }
    this.coachEmpty.hidden = true;
  }

  _fillCard(c) {
    if (!c) return;
    const ev = c.ev;
    const pinned = ev.severity === "critical" && !c.acked;
    c.el.classList.toggle("pinned-card", pinned);
    c.el.classList.toggle("acked", c.acked);
    const start = this._startedAt();
    const at = start !== null && typeof ev.ts === "number" ? clock((ev.ts - start) / 1000) : "";
    const source = ev.source ? t(`source.${ev.source}`) : "";
    const button = pinned
      ? h("button", { class: "ack", type: "button", text: t("coach.ack"), onclick: () => this._ack(c) })
      : ev.severity !== "critical"
        ? h("button", {
            class: "dismiss",
            type: "button",
            title: t("coach.dismiss"),
            "aria-label": `${t("coach.dismiss")}: ${shorten(ev.text, 40)}`,
            text: "×",
            onclick: () => this._dismiss(c),
          })
        : null;
    const refs = ev.refs.length
      ? h(
          "div",
          { class: "refs" },
          h("span", { class: "refs-label", text: t("coach.refs") }),
          ev.refs.map((r) => {
            const b = this.bubbles.get(r);
            const quote = b ? `«${shorten(maskedText(b.text), 60)}»` : t("coach.refMissing");
            return h("button", {
              class: "ref",
              type: "button",
              dataset: { ref: r },
              disabled: !b,
              text: quote,
              onclick: () => this.showUtterance(r),
            });
          }),
        )
      : null;
    clear(
      c.el,
      h(
        "header",
        {},
        h("span", { class: "sev", text: t(`sev.${ev.severity}`) }),
        h("span", { class: "kind", text: t(`kind.${ev.kind}`) }),
        h("span", { class: "src", text: [source, at].filter(Boolean).join(" · ") }),
        button,
      ),
      h("p", { class: "card-text", text: ev.text }),
      ev.source === "kb" ? knowledgeParts(ev, this.callId, this.kbMarks) : null,
      refs,
    );
  }

  _ack(c) {
    c.acked = true;
    c.el.removeAttribute("role");
    this.cardList.prepend(c.el);
    this._fillCard(c);
    c.el.querySelector("button, .ref")?.focus();
  }

  _dismiss(c) {
    const next = c.el.nextElementSibling || c.el.previousElementSibling;
    c.el.remove();
    c.dismissed = true;
    (next?.querySelector("button") || this.scroller).focus();
    this.coachEmpty.hidden = this.pinned.childElementCount + this.cardList.childElementCount > 0;
  }

  // -- summary --------------------------------------------------------------------------------

  _renderSummary() {
    const el = this.summaryEl;
    const s = this.summary;
    if (!s && !this.ended) {
      el.hidden = true;
      return;
    }
    el.hidden = false;
    clear(el, h("h2", { text: t("summary.title") }));
    if (!s) {
      el.append(h("p", { class: "muted", text: t("summary.pending") }));
      return;
    }
    const items = Array.isArray(s.actionItems) ? s.actionItems : [];
    add(
      el,
      h(
        "dl",
        { class: "facts" },
        h(
          "div",
          {},
          h("dt", { text: t("summary.disposition") }),
          h("dd", {
            class: "badge disposition",
            dataset: { value: s.disposition || "" },
            text: enumLabel("disposition", s.disposition),
          }),
        ),
        h(
          "div",
          {},
          h("dt", { text: t("summary.sentiment") }),
          h("dd", {
            class: `badge sentiment ${sentimentClass(s.sentiment)}`,
            dataset: { value: s.sentiment || "" },
            text: enumLabel("sentiment", s.sentiment),
          }),
        ),
      ),
      h("p", { class: "summary-text", text: s.text || "" }),
      items.length
        ? [
            h("h3", { text: t("summary.actions") }),
            h(
              "ul",
              { class: "actions" },
              items.map((a) => h("li", { text: a })),
            ),
          ]
        : null,
    );
  }

  // -- metrics --------------------------------------------------------------------------------

  _renderMetrics() {
    const m = this.metrics || {};
    // Talk time from the finals, until a metrics event says better.
    this.talk = { agent: 0, customer: 0 };
    for (const b of this.bubbles.values()) if (b.speaker in this.talk) this.talk[b.speaker] += b.dur || 0;
    let share = m.agentShare ?? null;
    if (share === null) {
      const total = this.talk.agent + this.talk.customer;
      share = total > 0 ? this.talk.agent / total : null;
    }
    const agentTalk = m.agentTalk ?? (this.talk.agent || null);
    const customerTalk = m.customerTalk ?? (this.talk.customer || null);
    let silenceNow = null;
    if (!this.ended && this.lastSpeechTs !== null) {
      silenceNow = Math.max(0, (serverClock.now() - this.lastSpeechTs) / 1000);
    }
    const none = t("metrics.none");
    const row = (key, value, cls = "") =>
      h(
        "div",
        { class: `metric ${cls}`, dataset: { metric: key } },
        h("dt", { text: t(`metrics.${key}`) }),
        h("dd", { text: value }),
      );
    const bar = h(
      "div",
      {
        class: "ratio",
        role: "img",
        "aria-label":
          share === null
            ? `${t("metrics.talk")}: ${none}`
            : `${t("metrics.talk")}: ${t("speaker.agent")} ${percent(share)}, ${t("speaker.customer")} ${percent(1 - share)}`,
      },
      h("span", { class: "seg agent", style: { width: `${share === null ? 50 : share * 100}%` } }),
      h("span", { class: "seg customer", style: { width: `${share === null ? 50 : (1 - share) * 100}%` } }),
    );
    if (share === null) bar.classList.add("unknown");
    const legend = h(
      "div",
      { class: "ratio-legend" },
      h("span", {
        class: "agent",
        text: `${t("speaker.agent")} ${share === null ? none : percent(share)}${agentTalk ? ` · ${secs(agentTalk)}` : ""}`,
      }),
      h("span", {
        class: "customer",
        text: `${t("speaker.customer")} ${share === null ? none : percent(1 - share)}${customerTalk ? ` · ${secs(customerTalk)}` : ""}`,
      }),
    );
    const overtalk =
      m.overtalkCount !== null && m.overtalkCount !== undefined
        ? t("metrics.overtalkValue", { n: m.overtalkCount, s: secs(m.overtalkSeconds ?? 0) })
        : m.overtalkSeconds !== null && m.overtalkSeconds !== undefined
          ? secs(m.overtalkSeconds)
          : none;
    const rows = [
      row(
        "silence",
        silenceNow === null ? none : clock(silenceNow),
        silenceNow !== null && silenceNow >= LONG_SILENCE_S ? "warn" : "",
      ),
    ];
    if (m.silenceTotal !== null && m.silenceTotal !== undefined)
      rows.push(row("silenceTotal", secs(m.silenceTotal)));
    if (m.longestSilence !== null && m.longestSilence !== undefined)
      rows.push(row("longestSilence", secs(m.longestSilence)));
    rows.push(row("overtalk", overtalk));
    clear(
      this.metricsEl,
      h("h2", { text: t("metrics.title") }),
      h(
        "div",
        { class: "talk", dataset: { share: share === null ? "" : share.toFixed(3) } },
        h("div", { class: "talk-label", text: t("metrics.talk") }),
        bar,
        legend,
      ),
      h("dl", { class: "metric-rows" }, rows),
    );
  }
}
