// Interface strings in Spanish and English. The language follows the browser unless the user
// picked one (kept in localStorage); `onLang` listeners re-render what they own.

const STRINGS = {
  es: {
    "app.name": "call coach",
    skip: "Saltar al contenido",
    "lang.switch": "English",
    "lang.switchTitle": "Cambiar el idioma a inglés",
    "signin.title": "Iniciar sesión",
    "signin.label": "Token de acceso",
    "signin.hint":
      "Pida el token a su supervisor o genérelo con «python -m relay token --role agent --agent 200».",
    "signin.submit": "Entrar",
    "signin.malformed": "Ese token no tiene un formato válido.",
    "signin.expired": "El token ha caducado. Pida uno nuevo.",
    "signin.rejected": "El servidor rechazó el token: {reason}",
    signout: "Salir",
    "role.agent": "Agente {agent}",
    "role.supervisor": "Supervisión",
    "conn.connecting": "Conectando…",
    "conn.replaying": "Sincronizando…",
    "conn.live": "En directo",
    "conn.reconnecting": "Sin conexión · reintento en {s} s",
    "conn.retrying": "Reconectando…",
    "conn.refused": "Acceso denegado",
    "conn.unauthorized": "Sesión no válida",
    "conn.closed": "Desconectado",
    "notice.gap": "Parte del historial ya no está disponible; puede faltar algún evento anterior.",
    "console.title": "Consola del agente",
    "console.waiting": "Esperando una llamada…",
    "console.waitingHint": "La llamada aparecerá aquí en cuanto empiece.",
    "console.toWall": "Panel de supervisión",
    "kbReport.toReport": "Informe de conocimiento",
    "console.backToMine": "Volver a mis llamadas",
    "refused.forbidden": "Esta llamada pertenece a otro agente. No se muestra nada de ella.",
    "refused.unknown": "No existe ninguna llamada con ese identificador.",
    "refused.bad": "Solicitud no válida: {reason}",
    "call.caller": "Cliente",
    "call.agent": "Agente",
    "call.duration": "Duración",
    "call.live": "En curso",
    "call.ended": "Finalizada",
    "call.endedReason": "Finalizada · {reason}",
    "rec.recording": "Grabando",
    "rec.paused": "Grabación en pausa",
    "rec.pause": "Pausar grabación",
    "rec.resume": "Reanudar grabación",
    "rec.failed": "No se pudo cambiar la grabación: {reason}",
    "wall.recPaused": "Grabación en pausa",
    "speaker.customer": "Cliente",
    "speaker.agent": "Agente",
    "speaker.mix": "Llamada",
    "transcript.title": "Transcripción",
    "transcript.empty": "Todavía no se ha dicho nada.",
    "transcript.jump": "Ir al directo",
    "transcript.jumpNew": "Ir al directo ({n} nuevas)",
    "coach.title": "Asistencia",
    "coach.empty": "Sin avisos por ahora.",
    "coach.dismiss": "Descartar",
    "coach.ack": "Entendido",
    "coach.refs": "Por lo dicho en:",
    "coach.refMissing": "(frase aún no recibida)",
    "kind.tip": "Consejo",
    "kind.alert": "Alerta",
    "kind.coach": "Sugerencia",
    "sev.info": "Info",
    "sev.warning": "Aviso",
    "sev.critical": "Crítico",
    "source.rules": "reglas",
    "source.llm": "IA",
    "metrics.title": "Métricas",
    "metrics.talk": "Tiempo de habla",
    "metrics.silence": "Silencio actual",
    "metrics.silenceTotal": "Silencio total",
    "metrics.longestSilence": "Silencio más largo",
    "metrics.overtalk": "Solapamientos",
    "metrics.overtalkValue": "{n} ({s})",
    "metrics.none": "—",
    "summary.title": "Resumen de la llamada",
    "summary.disposition": "Resultado",
    "summary.sentiment": "Sentimiento",
    "summary.actions": "Tareas pendientes",
    "summary.pending": "El resumen llegará en unos segundos.",
    "disposition.completed": "Completada",
    "disposition.resolved": "Resuelta",
    "disposition.retained": "Cliente retenido",
    "disposition.cancellation_requested": "Baja solicitada",
    "disposition.escalated": "Escalada",
    "disposition.no_conversation": "Sin conversación",
    "disposition.unknown": "Sin determinar",
    "sentiment.positive": "Positivo",
    "sentiment.neutral": "Neutro",
    "sentiment.negative": "Negativo",
    "sentiment.mixed": "Mixto",
    "wall.title": "Panel de supervisión",
    "wall.count": "{n} llamadas activas",
    "wall.countOne": "1 llamada activa",
    "wall.empty": "No hay llamadas activas.",
    "wall.agentOnly": "El panel de supervisión necesita un token de supervisor.",
    "wall.toConsole": "Ir a la consola del agente",
    "wall.alerts": "{n} alertas",
    "wall.alertsOne": "1 alerta",
    "wall.noAlerts": "Sin alertas",
    "wall.close": "Cerrar",
    "wall.follow": "Seguir la llamada de {caller}",
    "wall.noLine": "(sin transcripción todavía)",
    "wall.select": "Elija una llamada para seguirla en directo.",
    "wall.ended": "Finalizada",
    "redact.title": "Dato personal: se ocultó antes de guardarse",
    "redact.card": "[tarjeta]",
    "redact.cvv": "[CVV]",
    "redact.expiry": "[caducidad]",
    "redact.national_id": "[documento de identidad]",
    "redact.iban": "[IBAN]",
    "redact.phone": "[teléfono]",
    "redact.email": "[correo]",
    "redact.dob": "[fecha de nacimiento]",
  },
  en: {
    "app.name": "call coach",
    skip: "Skip to content",
    "lang.switch": "Español",
    "lang.switchTitle": "Switch the language to Spanish",
    "signin.title": "Sign in",
    "signin.label": "Access token",
    "signin.hint":
      "Ask your supervisor for a token, or create one with “python -m relay token --role agent --agent 200”.",
    "signin.submit": "Sign in",
    "signin.malformed": "That token is not well formed.",
    "signin.expired": "The token has expired. Ask for a new one.",
    "signin.rejected": "The server refused the token: {reason}",
    signout: "Sign out",
    "role.agent": "Agent {agent}",
    "role.supervisor": "Supervisor",
    "conn.connecting": "Connecting…",
    "conn.replaying": "Catching up…",
    "conn.live": "Live",
    "conn.reconnecting": "Offline · retrying in {s} s",
    "conn.retrying": "Reconnecting…",
    "conn.refused": "Access refused",
    "conn.unauthorized": "Session not valid",
    "conn.closed": "Disconnected",
    "notice.gap": "Part of the history is no longer stored; some earlier events may be missing.",
    "console.title": "Agent console",
    "console.waiting": "Waiting for a call…",
    "console.waitingHint": "The call shows up here as soon as it starts.",
    "console.toWall": "Supervisor wall",
    "kbReport.toReport": "Knowledge report",
    "console.backToMine": "Back to my calls",
    "refused.forbidden": "This call belongs to another agent. Nothing of it is shown.",
    "refused.unknown": "There is no call with that id.",
    "refused.bad": "Bad request: {reason}",
    "call.caller": "Caller",
    "call.agent": "Agent",
    "call.duration": "Duration",
    "call.live": "In progress",
    "call.ended": "Ended",
    "call.endedReason": "Ended · {reason}",
    "rec.recording": "Recording",
    "rec.paused": "Recording paused",
    "rec.pause": "Pause recording",
    "rec.resume": "Resume recording",
    "rec.failed": "Could not change the recording: {reason}",
    "wall.recPaused": "Recording paused",
    "speaker.customer": "Customer",
    "speaker.agent": "Agent",
    "speaker.mix": "Call",
    "transcript.title": "Transcript",
    "transcript.empty": "Nothing has been said yet.",
    "transcript.jump": "Jump to live",
    "transcript.jumpNew": "Jump to live ({n} new)",
    "coach.title": "Coaching",
    "coach.empty": "No tips yet.",
    "coach.dismiss": "Dismiss",
    "coach.ack": "Got it",
    "coach.refs": "Triggered by:",
    "coach.refMissing": "(line not received yet)",
    "kind.tip": "Tip",
    "kind.alert": "Alert",
    "kind.coach": "Coaching",
    "sev.info": "Info",
    "sev.warning": "Warning",
    "sev.critical": "Critical",
    "source.rules": "rules",
    "source.llm": "AI",
    "metrics.title": "Metrics",
    "metrics.talk": "Talk time",
    "metrics.silence": "Current silence",
    "metrics.silenceTotal": "Total silence",
    "metrics.longestSilence": "Longest silence",
    "metrics.overtalk": "Overtalk",
    "metrics.overtalkValue": "{n} ({s})",
    "metrics.none": "—",
    "summary.title": "Call summary",
    "summary.disposition": "Outcome",
    "summary.sentiment": "Sentiment",
    "summary.actions": "Action items",
    "summary.pending": "The summary arrives in a few seconds.",
    "disposition.completed": "Completed",
    "disposition.resolved": "Resolved",
    "disposition.retained": "Customer retained",
    "disposition.cancellation_requested": "Cancellation requested",
    "disposition.escalated": "Escalated",
    "disposition.no_conversation": "No conversation",
    "disposition.unknown": "Unknown",
    "sentiment.positive": "Positive",
    "sentiment.neutral": "Neutral",
    "sentiment.negative": "Negative",
    "sentiment.mixed": "Mixed",
    "wall.title": "Supervisor wall",
    "wall.count": "{n} active calls",
    "wall.countOne": "1 active call",
    "wall.empty": "No active calls.",
    "wall.agentOnly": "The supervisor wall needs a supervisor token.",
    "wall.toConsole": "Go to the agent console",
    "wall.alerts": "{n} alerts",
    "wall.alertsOne": "1 alert",
    "wall.noAlerts": "No alerts",
    "wall.close": "Close",
    "wall.follow": "Follow the call with {caller}",
    "wall.noLine": "(no transcript yet)",
    "wall.select": "Pick a call to follow it live.",
    "wall.ended": "Ended",
    "redact.title": "Personal data: masked before it was stored",
    "redact.card": "[card number]",
    "redact.cvv": "[CVV]",
    "redact.expiry": "[expiry date]",
    "redact.national_id": "[ID number]",
    "redact.iban": "[IBAN]",
    "redact.phone": "[phone]",
    "redact.email": "[e-mail]",
    "redact.dob": "[date of birth]",
  },
};

export const LANGS = Object.keys(STRINGS);

/** Add a page's own strings (`{es: {...}, en: {...}}`) to the tables, before first use. */
export function addStrings(more) {
  for (const [code, table] of Object.entries(more)) {
    if (code in STRINGS) Object.assign(STRINGS[code], table);
  }
}
const KEY = "coach.lang";
const listeners = new Set();

function initial() {
  const saved = localStorage.getItem(KEY);
  if (saved && saved in STRINGS) return saved;
  for (const tag of navigator.languages || [navigator.language || "en"]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (base in STRINGS) return base;
  }
  return "en";
}

let current = initial();

/** The active language code. */
export function lang() {
  return current;
}

/** The string `key` in the active language, with `{name}` placeholders filled from `vars`. */
export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

/** Switch language, remember it, and re-render everything that registered with `onLang`. */
export function setLang(code) {
  if (!(code in STRINGS) || code === current) return;
  current = code;
  localStorage.setItem(KEY, code);
  translate(document);
  for (const fn of listeners) fn(code);
}

/** Call `fn` after every language change. */
export function onLang(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

/** Fill elements marked `data-i18n` (text), `data-i18n-title`, `data-i18n-label` (aria-label). */
export function translate(root) {
  document.documentElement.lang = current;
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll("[data-i18n-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nLabel));
  }
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  }
}

/** The other language (for the switch button). */
export function otherLang() {
  return LANGS.find((code) => code !== current) ?? current;
}

/** Format a duration in seconds as m:ss (or h:mm:ss). */
export function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${ss}` : `${m}:${ss}`;
}

/** Format seconds with one decimal and a unit, in the active locale. */
export function secs(seconds) {
  const n = new Intl.NumberFormat(current, { maximumFractionDigits: seconds < 10 ? 1 : 0 });
  return `${n.format(seconds)} s`;
}

/** Format a 0..1 share as a whole percentage in the active locale. */
export function percent(share) {
  return new Intl.NumberFormat(current, { style: "percent", maximumFractionDigits: 0 }).format(share);
}
