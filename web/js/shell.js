// What both pages share: the token (sign-in, sessionStorage), the top bar with the
// connection indicator and the language switch, and the notice line.

import { h, clear } from "./dom.js";
import { t, setLang, otherLang, onLang, translate } from "./i18n.js";
import { State } from "./feed.js";

const TOKEN_KEY = "coach.token";

/** Parameters of the URL fragment (`#token=...&call=...`). */
export function hashParams() {
  return new URLSearchParams(location.hash.slice(1));
}

/** Replace the URL fragment with `params` without reloading or adding history. */
export function setHash(params) {
  const text = params.toString();
  history.replaceState(null, "", `${location.pathname}${location.search}${text ? `#${text}` : ""}`);
}

/** The token: from `#token=` (moved into sessionStorage and out of the URL) or the session. */
export function takeToken() {
  const params = hashParams();
  const fromUrl = params.get("token");
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl.trim());
    params.delete("token");
    setHash(params);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Forget the token. */
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The unverified claims of a browser token (`v1.<payload>.<sig>`), or null if malformed. */
export function claims(token) {
  const parts = String(token || "").split(".");
  if (parts.length !== 3 || parts[0] !== "v1") return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4)));
    if (json.role !== "agent" && json.role !== "supervisor") return null;
    return { role: json.role, agent: typeof json.agent === "string" ? json.agent : null, exp: json.exp };
  } catch {
    return null;
  }
}

/** Why a token cannot be used (an i18n key), or null if it looks usable. */
export function tokenProblem(token) {
  const c = claims(token);
  if (!c) return "signin.malformed";
  if (typeof c.exp === "number" && c.exp * 1000 <= Date.now()) return "signin.expired";
  return null;
}

/**
 * Replace `main`'s content with the sign-in form; `message` (already translated) explains why.
 * Resolves nothing: a valid submission stores the token and reloads the page state via `done`.
 */
export function showSignIn(main, message, done) {
  const input = h("input", {
    id: "token",
    name: "token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": "signin-hint signin-error",
  });
  const error = h("p", { id: "signin-error", class: "error", role: "alert", text: message || "" });
  const form = h(
    "form",
    { class: "signin panel", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title", "data-i18n": "signin.title" }),
    h("label", { for: "token", "data-i18n": "signin.label" }),
    input,
    h("p", { id: "signin-hint", class: "muted", "data-i18n": "signin.hint" }),
    error,
    h("button", { type: "submit", class: "primary", "data-i18n": "signin.submit" }),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const token = input.value.trim();
    const problem = tokenProblem(token);
    if (problem) {
      error.textContent = t(problem);
      input.focus();
      return;
    }
    sessionStorage.setItem(TOKEN_KEY, token);
    done(token);
  });
  clear(main, h("div", { class: "signin-wrap" }, form));
  translate(main);
  input.focus();
}

/** The top bar. Returns handles to update the connection indicator and identity. */
export function topBar(el, { titleKey, onSignOut, links = [] }) {
  const conn = h("span", {
    class: "conn",
    role: "status",
    "aria-live": "polite",
    dataset: { state: "closed" },
  });
  const who = h("span", { class: "whoami" });
  const langBtn = h("button", { type: "button", class: "lang", "data-i18n-title": "lang.switchTitle" });
  const out = h("button", { type: "button", class: "signout", "data-i18n": "signout", hidden: true });
  langBtn.addEventListener("click", () => setLang(otherLang()));
  out.addEventListener("click", () => onSignOut());
  const nav = h(
    "nav",
    { class: "links" },
    links.map(([href, key]) => h("a", { href, "data-i18n": key })),
  );
  clear(
    el,
    h(
      "span",
      { class: "brand" },
      h("span", { class: "logo", "aria-hidden": "true" }),
      h("span", { "data-i18n": "app.name" }),
    ),
    h("span", { class: "page-title", "data-i18n": titleKey }),
    nav,
    h("span", { class: "spacer" }),
    who,
    conn,
    langBtn,
    out,
  );
  let state = State.CLOSED;
  let info = {};
  let me = null;
  const render = () => {
    langBtn.textContent = t("lang.switch");
    out.hidden = !me;
    who.textContent = !me
      ? ""
      : me.role === "agent"
        ? t("role.agent", { agent: me.agent })
        : t("role.supervisor");
    who.dataset.role = me ? me.role : "";
    conn.dataset.state = state;
    const secsLeft = info.retryAt ? Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000)) : 0;
    clear(
      conn,
      h("span", { class: "dot", "aria-hidden": "true" }),
      h("span", {
        class: "conn-text",
        text: t(state === State.RECONNECTING && !secsLeft ? "conn.retrying" : `conn.${state}`, {
          s: secsLeft,
        }),
      }),
    );
  };
  onLang(render);
  render();
  translate(el);
  return {
    /** Show a connection state (`info.retryAt` for the countdown). */
    setConn(next, nextInfo = {}) {
      state = next;
      info = nextInfo;
      render();
    },
    /** Show who is signed in (claims) or nobody. */
    setWho(c) {
      me = c;
      render();
    },
    tick: render,
  };
}

/** A one-line notice under the top bar (e.g. a replay gap); null hides it. */
export function notice(el, key) {
  el.hidden = !key;
  el.dataset.i18n = key || "";
  el.textContent = key ? t(key) : "";
}
