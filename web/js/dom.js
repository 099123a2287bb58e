// Tiny DOM helpers: no framework, text is always set as text (never parsed as HTML).

/**
 * Create an element. `attrs`: `class`, `text`, `dataset` (object), `on<event>` handlers,
 * anything else as an attribute (`false`/`null` skip it). Children: nodes or strings.
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") el.className = value;
    else if (name === "text") el.textContent = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    // Through the CSSOM: the Content-Security-Policy (style-src 'self') refuses style="...".
    else if (name === "style") Object.assign(el.style, value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
  el.append(...nodes(children));
  return el;
}

function nodes(children) {
  return children
    .flat(Infinity)
    .filter((c) => c !== null && c !== undefined && c !== false)
    .map((c) => (c instanceof Node ? c : document.createTextNode(String(c))));
}

/** Replace every child of `el` with `children` (nodes, strings, arrays; null is skipped). */
export function clear(el, ...children) {
  el.replaceChildren(...nodes(children));
  return el;
}

/** Append `children` to `el` (nodes, strings, arrays; null is skipped). */
export function add(el, ...children) {
  el.append(...nodes(children));
  return el;
}

/** Shorten `text` to `max` characters at a word boundary, with an ellipsis. */
export function shorten(text, max) {
  const s = String(text ?? "").trim();
  if (s.length <= max) return s;
  const cut = s.slice(0, max);
  const space = cut.lastIndexOf(" ");
  return `${(space > max * 0.6 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

/** Estimated server clock: event `ts` values (server ms) versus local receipt time. */
export const serverClock = {
  offset: 0,
  samples: 0,
  /** Learn from a live event's server timestamp (latency only makes ts look older). */
  observe(ts) {
    if (typeof ts !== "number") return;
    const sample = ts - Date.now();
    if (this.samples === 0 || sample > this.offset) this.offset = sample;
    this.samples += 1;
  },
  /** Server time now, in ms. */
  now() {
    return Date.now() + this.offset;
  },
};
