// The knowledge-base owner's report (supervisors): per document and passage, how often it was
// shown as a card and how agents marked it; the customers' and agents' questions that found
// nothing, grouped, with counts and when last asked; CSV exports of both. Data from
// GET /kb/report (relay/kb_report.py); everything is set as text, never parsed as HTML.

import "./history_strings.js";
import { h, clear } from "./dom.js";
import { addStrings, t, translate, onLang } from "./i18n.js";
import { takeToken, forgetToken, claims, tokenProblem, showSignIn, topBar } from "./shell.js";
import { api, failure, download } from "./records.js";

addStrings({
  es: {
    "kbReport.title": "Informe de la base de conocimiento",
    "kbReport.refresh": "Actualizar",
    "kbReport.csvPassages": "CSV de pasajes",
    "kbReport.csvUnanswered": "CSV de preguntas sin respuesta",
    "kbReport.since": "Desde {date} (lo más antiguo que se conserva).",
    "kbReport.empty": "Aún no hay datos.",
    "kbReport.supervisorsOnly": "Este informe es solo para supervisores.",
    "kbReport.error": "No se pudo cargar el informe: {reason}",
    "kbReport.passages": "Documentos y pasajes",
    "kbReport.unanswered": "Preguntas sin respuesta",
    "kbReport.doc": "Documento / sección",
    "kbReport.shown": "Mostrado",
    "kbReport.useful": "Útil",
    "kbReport.notUseful": "No útil",
    "kbReport.lastShown": "Última vez",
    "kbReport.question": "Pregunta",
    "kbReport.lang": "Idioma",
    "kbReport.count": "Veces",
    "kbReport.lastSeen": "Última vez",
    "kbReport.origin": "Llamadas / búsquedas",
    "kbReport.noPassages": "Ninguna tarjeta mostrada ni marcada todavía.",
    "kbReport.noUnanswered": "Ninguna pregunta sin respuesta.",
  },
  en: {
    "kbReport.title": "Knowledge base report",
    "kbReport.refresh": "Refresh",
    "kbReport.csvPassages": "Passages CSV",
    "kbReport.csvUnanswered": "Unanswered questions CSV",
    "kbReport.since": "Since {date} (the oldest kept).",
    "kbReport.empty": "No data yet.",
    "kbReport.supervisorsOnly": "This report is for supervisors only.",
    "kbReport.error": "Could not load the report: {reason}",
    "kbReport.passages": "Documents and passages",
    "kbReport.unanswered": "Unanswered questions",
    "kbReport.doc": "Document / section",
    "kbReport.shown": "Shown",
    "kbReport.useful": "Useful",
    "kbReport.notUseful": "Not useful",
    "kbReport.lastShown": "Last shown",
    "kbReport.question": "Question",
    "kbReport.lang": "Language",
    "kbReport.count": "Times",
    "kbReport.lastSeen": "Last asked",
    "kbReport.origin": "Calls / searches",
    "kbReport.noPassages": "No card shown or marked yet.",
    "kbReport.noUnanswered": "No unanswered question.",
  },
});

const main = document.getElementById("main");
let token = null;
let body = null;
let status = null;
let tables = null;

const bar = topBar(document.getElementById("top"), {
  titleKey: "kbReport.title",
  onSignOut: () => signIn(""),
  links: [
    ["wall.html", "console.toWall"],
    ["history.html", "history.toHistory"],
  ],
});

function signIn(message) {
  forgetToken();
  bar.setWho(null);
  showSignIn(main, message, () => boot());
}

function when(ms) {
  return typeof ms === "number" ? new Date(ms).toLocaleString() : "";
}

function num(value, extra = "") {
  return h("td", { class: `num ${extra}`.trim(), text: String(value ?? 0) });
}

function head(keys) {
  return h(
    "thead",
    {},
    h(
      "tr",
      {},
      keys.map(([key, cls]) => h("th", { scope: "col", class: cls || "", text: t(key) })),
    ),
  );
}

function passagesTable(docs) {
  const rows = [];
  for (const d of docs) {
    rows.push(
      h(
        "tr",
        { class: "doc-row", dataset: { doc: String(d.docId) } },
        h("td", { text: d.title || d.docId }),
        num(d.shown),
        num(d.useful),
        num(d.notUseful, d.notUseful > d.useful ? "bad" : ""),
        h("td", {}),
      ),
    );
    for (const p of d.passages || []) {
      rows.push(
        h(
          "tr",
          { class: "passage-row", dataset: { passage: String(p.passage) } },
          h("td", { text: p.section || p.passage }),
          num(p.shown),
          num(p.useful),
          num(p.notUseful, p.notUseful > p.useful ? "bad" : ""),
          h("td", { text: when(p.lastShown) }),
        ),
      );
    }
  }
  return h(
    "table",
    { class: "report-table passages" },
    h("caption", { text: t("kbReport.passages") }),
    head([
      ["kbReport.doc"],
      ["kbReport.shown", "num"],
      ["kbReport.useful", "num"],
      ["kbReport.notUseful", "num"],
      ["kbReport.lastShown"],
    ]),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "5", class: "muted", text: t("kbReport.noPassages") }))),
  );
}

function unansweredTable(items) {
  const rows = items.map((u) =>
    h(
      "tr",
      { class: "unanswered-row" },
      h("td", { class: "question", text: u.text }),
      h("td", { text: u.lang || "" }),
      num(u.count),
      h("td", { text: when(u.lastSeen) }),
      h("td", { class: "num", text: `${u.fromCalls ?? 0} / ${u.fromSearches ?? 0}` }),
    ),
  );
  return h(
    "table",
    { class: "report-table unanswered" },
    h("caption", { text: t("kbReport.unanswered") }),
    head([
      ["kbReport.question"],
      ["kbReport.lang"],
      ["kbReport.count", "num"],
      ["kbReport.lastSeen"],
      ["kbReport.origin", "num"],
    ]),
    h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: "5", class: "muted", text: t("kbReport.noUnanswered") }))),
  );
}

function render() {
  if (!body) return;
  const since = [body.since?.shown, body.since?.marks, body.since?.misses].filter((v) => typeof v === "number");
  status.textContent = since.length ? t("kbReport.since", { date: when(Math.min(...since)) }) : t("kbReport.empty");
  clear(
    tables,
    h("section", { class: "panel" }, passagesTable(body.documents || [])),
    h("section", { class: "panel" }, unansweredTable(body.unanswered || [])),
  );
}

async function load() {
  status.textContent = "…";
  const res = await api(token, "/kb/report");
  if (res.status === 401) return signIn(t("signin.rejected", { reason: await failure(res) }));
  if (res.status === 403) {
    body = null;
    clear(tables);
    status.textContent = t("kbReport.supervisorsOnly");
    return;
  }
  if (!res.ok) {
    status.textContent = t("kbReport.error", { reason: await failure(res) });
    return;
  }
  body = await res.json();
  render();
}

async function exportCsv(table) {
  try {
    await download(token, `/kb/report.csv?table=${table}`, `kb-${table}.csv`);
  } catch (err) {
    status.textContent = t("kbReport.error", { reason: err.message });
  }
}

function boot() {
  translate(document);
  token = takeToken();
  const problem = token ? tokenProblem(token) : "";
  if (!token || problem) return signIn(problem ? t(problem) : "");
  const me = claims(token);
  bar.setWho(me);
  status = h("p", { class: "muted status", role: "status" });
  tables = h("div", { class: "report-tables" });
  const actions = h(
    "div",
    { class: "report-head panel" },
    h("h1", { class: "sr-only", "data-i18n": "kbReport.title" }),
    h("button", { type: "button", class: "refresh", "data-i18n": "kbReport.refresh", onclick: () => load() }),
    h("span", { class: "spacer" }),
    h("button", { type: "button", class: "csv csv-passages", "data-i18n": "kbReport.csvPassages", onclick: () => exportCsv("passages") }),
    h("button", { type: "button", class: "csv csv-unanswered", "data-i18n": "kbReport.csvUnanswered", onclick: () => exportCsv("unanswered") }),
  );
  clear(main, actions, status, tables);
  translate(main);
  if (me && me.role !== "supervisor") {
    actions.hidden = true;
    status.textContent = t("kbReport.supervisorsOnly");
    return;
  }
  load();
}

onLang(() => {
  translate(main);
  render();
});
boot();
