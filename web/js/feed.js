// One WebSocket subscription to the relay (`/ws?callId=<id>|*`), kept alive across drops.
//
// Resume: after any close the feed reconnects with `since=<last id received>` (the id the
// relay itself names in its close reason), so nothing is lost. Dedupe: ids are monotonic per
// call, so an event whose id is not above the last one seen *for its call* is a repeat and is
// dropped. (On `*` the relay may interleave calls slightly out of global order while it
// switches from replay to live; a per-call check is exact, a global one would drop events.)
//
// Close codes (relay/ws.py): 4401 bad token and 4403 another agent's call stop the feed for
// good; 4400 / 4404 stop it too (retrying cannot help); anything else is retried with backoff.

/** Connection states, shown by the indicator (`data-state`). */
export const State = Object.freeze({
  CONNECTING: "connecting",
  REPLAYING: "replaying",
  LIVE: "live",
  RECONNECTING: "reconnecting",
  UNAUTHORIZED: "unauthorized",
  REFUSED: "refused",
  CLOSED: "closed",
});

const FINAL_CODES = new Map([
  [4400, "bad"],
  [4401, "unauthorized"],
  [4403, "forbidden"],
  [4404, "unknown"],
]);
const BACKOFF_FIRST_MS = 300;
const BACKOFF_MAX_MS = 5000;

/** Split a bus id "ms-seq" into a comparable pair; null if malformed. */
export function parseId(id) {
  const m = /^(\d+)-(\d+)$/.exec(String(id));
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** Whether bus id `a` comes after `b`. */
export function idAfter(a, b) {
  const x = parseId(a);
  const y = parseId(b);
  if (!x || !y) return true;
  return x[0] > y[0] || (x[0] === y[0] && x[1] > y[1]);
}

export class Feed {
  /**
   * @param {object} opts
   * @param {string} opts.callId  a call id or "*"
   * @param {string} opts.token   browser token
   * @param {(ev: object, live: boolean) => void} opts.onEvent  each new bus event, once
   * @param {(state: string, info: object) => void} [opts.onState]
   * @param {(notice: object) => void} [opts.onNotice]  relay.gap notices
   */
  constructor({ callId, token, onEvent, onState = () => {}, onNotice = () => {} }) {
    this.callId = callId;
    this.token = token;
    this.onEvent = onEvent;
    this.onState = onState;
    this.onNotice = onNotice;
    this.state = State.CLOSED;
    this.lastId = null; // last id received, in arrival order: the resume point
    this.lastByCall = new Map(); // callId -> last id seen for that call (dedupe)
    this.duplicates = 0;
    this.connects = 0;
    this.ws = null;
    this.timer = null;
    this.backoff = BACKOFF_FIRST_MS;
    this.stopped = true;
    this.retryAt = 0;
    this._online = () => this._retryNow();
  }

  /** Open the connection (and keep reopening it until `stop`). */
  start() {
    this.stopped = false;
    window.addEventListener("online", this._online);
    this._connect();
    return this;
  }

  /** Close for good. */
  stop() {
    this.stopped = true;
    window.removeEventListener("online", this._online);
    clearTimeout(this.timer);
    this.timer = null;
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      this.ws.close(1000, "bye");
      this.ws = null;
    }
    this._set(State.CLOSED);
  }

  _url() {
    // The token is not in the URL (proxy logs, history): it is the first message, on open.
    const q = new URLSearchParams({ callId: this.callId });
    if (this.lastId) q.set("since", this.lastId);
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    return `${scheme}://${location.host}/ws?${q}`;
  }

  _set(state, info = {}) {
    this.state = state;
    this.onState(state, info);
  }

  _connect() {
    clearTimeout(this.timer);
    this.timer = null;
    this.connects += 1;
    this._set(this.connects === 1 ? State.CONNECTING : State.RECONNECTING, { retryAt: 0 });
    const ws = new WebSocket(this._url());
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ type: "auth", token: this.token }));
      this._set(State.REPLAYING);
    };
    ws.onmessage = (msg) => this._frame(msg.data);
    ws.onclose = (e) => this._closed(e);
  }

  _frame(data) {
    // A frame carries one or more events, one JSON object per line (the relay batches
    // whatever is queued for this client into one frame).
    for (const line of String(data).split("\n")) {
      if (line) this._event(line);
    }
  }

  _event(line) {
    let ev;
    try {
      ev = JSON.parse(line);
    } catch {
      return; // not ours to interpret; the relay only sends JSON
    }
    if (!ev || typeof ev !== "object") return;
    if (ev.type === "relay.live") {
      this.backoff = BACKOFF_FIRST_MS;
      this._set(State.LIVE);
      return;
    }
    if (ev.type === "relay.gap") {
      this.onNotice(ev);
      return;
    }
    if (typeof ev.id !== "string" || typeof ev.callId !== "string") return;
    this.lastId = ev.id;
    const last = this.lastByCall.get(ev.callId);
    if (last && !idAfter(ev.id, last)) {
      this.duplicates += 1;
      return;
    }
    this.lastByCall.set(ev.callId, ev.id);
    this.onEvent(ev, this.state === State.LIVE);
  }

  _closed(e) {
    this.ws = null;
    if (this.stopped) return;
    const final = FINAL_CODES.get(e.code);
    if (final === "unauthorized") {
      this.stopped = true;
      this._set(State.UNAUTHORIZED, { code: e.code, reason: e.reason });
      return;
    }
    if (final) {
      this.stopped = true;
      this._set(State.REFUSED, { code: e.code, reason: e.reason, why: final });
      return;
    }
    const jitter = 0.8 + Math.random() * 0.4;
    const delay = Math.round(this.backoff * jitter);
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    this.retryAt = Date.now() + delay;
    this._set(State.RECONNECTING, { code: e.code, reason: e.reason, retryAt: this.retryAt });
    this.timer = setTimeout(() => this._connect(), delay);
  }

  _retryNow() {
    if (!this.stopped && this.timer) this._connect();
  }
}
