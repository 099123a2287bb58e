// Knowledge assist in the console: what a knowledge card adds (answer, source, confidence,
// useful / not useful), the search box (Alt+K) and the document viewer a card's source opens.
// Everything from the knowledge base is set as text, never parsed as HTML.
//
// The LLM's answer streams (orchestrator/kb_answer.py): later events with the card's cardId
// carry answer {text, done, cites}, `text` being the whole answer so far. `patchAnswer` updates
// the card in place (the text node only, so nothing flickers and focus stays on the feedback
// buttons), with a typing caret until `done`; a final event with empty text (`dropped`: the
// answer cited nothing retrieved, or failed) removes what was shown.

import { h, clear } from "./dom.js";
import { addStrings, onLang, t } from "./i18n.js";

addStrings({
  es: {
    "kind.knowledge": "Respuesta",
    "source.kb": "base de conocimiento",
    "kb.title": "Base de conocimiento",
    "kb.search": "Buscar en la base de conocimiento",
    "kb.placeholder": "Pregunta o palabras (Alt+K)",
    "kb.go": "Buscar",
    "kb.nothing": "Nada con suficiente confianza.",
    "kb.error": "No se pudo buscar ahora.",
    "kb.score": "confianza {pct} %",
    "kb.open": "Abrir la fuente",
    "kb.answer": "Respuesta sugerida",
    "kb.writing": "escribiendo…",
    "kb.useful": "Útil",
    "kb.notUseful": "No útil",
    "kb.thanks": "Gracias, anotado.",
    "kb.close": "Cerrar",
    "kb.docError": "No se pudo abrir el documento.",
  },
  en: {
    "kind.knowledge": "Answer",
    "source.kb": "knowledge base",
    "kb.title": "Knowledge base",
    "kb.search": "Search the knowledge base",
    "kb.placeholder": "Question or words (Alt+K)",
    "kb.go": "Search",
    "kb.nothing": "Nothing with enough confidence.",
    "kb.error": "Search failed, try again.",
    "kb.score": "confidence {pct}%",
    "kb.open": "Open the source",
    "kb.answer": "Suggested answer",
    "kb.writing": "writing…",
    "kb.useful": "Useful",
    "kb.notUseful": "Not useful",
    "kb.thanks": "Thanks, noted.",
    "kb.close": "Close",
    "kb.docError": "Could not open the document.",
  },
});

let token = null;
let opener = null;

/** The browser token the knowledge requests carry (set by the page at sign-in). */
export function setToken(value) {
  token = value;
}

/** Where a card's or a result's source opens (the page's KBPanel). */
export function setOpener(fn) {
  opener = fn;
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${token}`, ...extra };
}

function scoreText(score) {
  return typeof score === "number" ? t("kb.score", { pct: Math.round(score * 100) }) : "";
}

function sourceButton(doc) {
  if (!doc || typeof doc.id !== "string") return null;
  const label = [doc.title, doc.section].filter((s) => typeof s === "string" && s).join(" › ");
  return h("button", {
    class: "kb-open",
    type: "button",
    title: t("kb.open"),
    dataset: { url: typeof doc.url === "string" ? doc.url : "" },
    text: label || doc.id,
    onclick: () => opener?.(doc),
  });
}

function answerText(answer) {
  return answer && typeof answer === "object" && typeof answer.text === "string" ? answer.text : "";
}

function setStreaming(box, streaming) {
  box.dataset.state = streaming ? "streaming" : "done";
  box.setAttribute("aria-busy", streaming ? "true" : "false");
  const label = box.querySelector(".kb-answer-label");
  const caret = box.querySelector(".kb-caret");
  if (streaming && !caret) {
    box.querySelector("p").append(h("span", { class: "kb-caret", "aria-hidden": "true" }));
  } else if (!streaming && caret) {
    caret.remove();
  }
  label.textContent = streaming ? `${t("kb.answer")} · ${t("kb.writing")}` : t("kb.answer");
}

function answerBlock(answer) {
  const text = answerText(answer);
  if (!text) return null;
  const box = h(
    "div",
    { class: "kb-answer" },
    h("span", { class: "kb-answer-label" }),
    h("p", {}, h("span", { class: "kb-answer-text", text })),
  );
  setStreaming(box, answer.done !== true);
  return box;
}

/** Apply a later event's answer to a rendered knowledge card in place; false when the card
 * has no knowledge parts to patch (the caller re-renders it). */
export function patchAnswer(cardEl, ev) {
  if (!ev.answer || typeof ev.answer !== "object") return false;
  const meta = cardEl.querySelector(".kb-meta");
  if (!meta) return false;
  const box = cardEl.querySelector(".kb-answer");
  const text = answerText(ev.answer);
  if (!text) {
    box?.remove(); // dropped, or nothing yet
    return true;
  }
  if (!box) {
    meta.before(answerBlock(ev.answer));
    return true;
  }
  const node = box.querySelector(".kb-answer-text");
  if (node.textContent !== text) node.textContent = text;
  setStreaming(box, ev.answer.done !== true);
  return true;
}

/** The parts a knowledge card shows under its text. `marks` remembers feedback per card. */
export function knowledgeParts(ev, callId, marks) {
  const answer = answerBlock(ev.answer);
  const mark = marks.get(ev.cardId || ev.id);
  const feedback = h(
    "div",
    { class: "kb-feedback" },
    mark
      ? h("span", { class: "kb-thanks", role: "status", text: t("kb.thanks") })
      : [
          h("button", {
            class: "kb-useful",
            type: "button",
            text: t("kb.useful"),
            onclick: (e) => sendMark(ev, callId, true, marks, e.currentTarget.parentElement),
          }),
          h("button", {
            class: "kb-not-useful",
            type: "button",
            text: t("kb.notUseful"),
            onclick: (e) => sendMark(ev, callId, false, marks, e.currentTarget.parentElement),
          }),
        ],
  );
  return [
    answer,
    h(
      "div",
      { class: "kb-meta" },
      sourceButton(ev.doc),
      h("span", { class: "kb-score", text: scoreText(ev.score) }),
    ),
    feedback,
  ];
}

async function sendMark(ev, callId, useful, marks, box) {
  for (const b of box.querySelectorAll("button")) b.disabled = true;
  try {
    const res = await fetch(`/calls/${encodeURIComponent(callId)}/feedback`, {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ eventId: ev.id, useful }),
    });
    if (!res.ok) throw new Error(String(res.status));
    marks.set(ev.cardId || ev.id, useful);
    clear(box, h("span", { class: "kb-thanks", role: "status", text: t("kb.thanks") }));
  } catch {
    for (const b of box.querySelectorAll("button")) b.disabled = false;
  }
}

/** The search box, its results and the document viewer. */
export class KBPanel {
  constructor(root) {
    this.input = h("input", {
      type: "search",
      class: "kb-q",
      name: "q",
      maxlength: "500",
      "aria-keyshortcuts": "Alt+K",
      autocomplete: "off",
    });
    this.results = h("ol", { class: "kb-results", "aria-live": "polite" });
    this.status = h("p", { class: "muted kb-status", role: "status" });
    this.viewer = h("article", { class: "kb-doc", hidden: true, tabindex: "-1" });
    this.form = h(
      "form",
      { class: "kb-form", role: "search", onsubmit: (e) => this._submit(e) },
      h("label", { class: "sr-only", for: "kb-q", "data-i18n": "kb.search" }),
      this.input,
      h("button", { type: "submit", class: "kb-go", "data-i18n": "kb.go" }),
    );
    this.input.id = "kb-q";
    this.el = h(
      "section",
      { class: "panel kb", "aria-label": t("kb.title") },
      h("h2", { "data-i18n": "kb.title" }),
      this.form,
      this.status,
      this.results,
      this.viewer,
    );
    root.append(this.el);
    this.relabel();
    setOpener((doc) => this.open(doc));
    this.onKey = (e) => {
      if (e.altKey && (e.key === "k" || e.key === "K")) {
        e.preventDefault();
        this.focus();
      }
    };
    document.addEventListener("keydown", this.onKey);
    this.offLang = onLang(() => this.relabel());
  }

  relabel() {
    for (const node of this.el.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
    this.input.placeholder = t("kb.placeholder");
    this.el.setAttribute("aria-label", t("kb.title"));
  }

  focus() {
    this.input.focus();
    this.input.select();
  }

  destroy() {
    document.removeEventListener("keydown", this.onKey);
    this.offLang?.();
    this.el.remove();
  }

  async _submit(e) {
    e.preventDefault();
    const q = this.input.value.trim();
    if (!q) return;
    this.status.textContent = "";
    try {
      const res = await fetch(`/kb/search?q=${encodeURIComponent(q)}`, { headers: headers() });
      if (!res.ok) throw new Error(String(res.status));
      const body = await res.json();
      const results = Array.isArray(body.results) ? body.results : [];
      clear(
        this.results,
        results.map((r) =>
          h(
            "li",
            { class: "kb-result", dataset: { id: String(r.id) } },
            sourceButton({ id: r.id, title: r.title, section: r.section, url: r.url }),
            h("span", { class: "kb-score", text: scoreText(r.score) }),
            h("p", { class: "kb-text", text: String(r.text || "") }),
          ),
        ),
      );
      if (!results.length) this.status.textContent = t("kb.nothing");
    } catch {
      clear(this.results);
      this.status.textContent = t("kb.error");
    }
  }

  /** Show a document and bring the cited section into view. */
  async open(doc) {
    const [docId, anchor] = String(doc.id).split("#");
    try {
      const res = await fetch(`/kb/docs/${encodeURIComponent(docId)}`, { headers: headers() });
      if (!res.ok) throw new Error(String(res.status));
      const body = await res.json();
      const sections = Array.isArray(body.sections) ? body.sections : [];
      clear(
        this.viewer,
        h(
          "header",
          {},
          h("h3", { class: "kb-doc-title", text: String(body.title || docId) }),
          h("button", {
            type: "button",
            class: "kb-close",
            text: t("kb.close"),
            onclick: () => {
              this.viewer.hidden = true;
            },
          }),
        ),
        sections.map((s) =>
          h(
            "section",
            { class: "kb-section", dataset: { anchor: String(s.anchor) } },
            s.title ? h("h4", { text: String(s.title) }) : null,
            h("p", { text: String(s.text || "") }),
          ),
        ),
      );
      this.viewer.hidden = false;
      const target = [...this.viewer.querySelectorAll(".kb-section")].find(
        (el) => el.dataset.anchor === anchor,
      );
      target?.classList.add("kb-cited");
      (target || this.viewer).scrollIntoView({ block: "nearest" });
      this.viewer.focus();
    } catch {
      this.status.textContent = t("kb.docError");
    }
  }
}
