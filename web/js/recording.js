// The recording state of one call (recording / paused) and the button that pauses or resumes
// it (e.g. while a card number is taken): `POST /calls/{id}/recording` {"state"}. The state
// shown follows the call's `call.recording` events; the relay answers 409 when the call is not
// being recorded (any more) and 503 when call control cannot reach Asterisk.

import { h, clear } from "./dom.js";
import { t } from "./i18n.js";
import { takeToken } from "./shell.js";

export class RecordingControl {
  constructor() {
    this.el = h("span", { class: "rec", hidden: true });
    this.reset(null);
  }

  /** Forget the previous call. */
  reset(callId) {
    this.callId = callId;
    this.state = null; // null (not recorded, or not yet), "recording", "paused"
    this.ended = false;
    this.busy = false;
    this.problem = null;
    this.render();
  }

  /** Take one of the call's events (only call.recording and call.ended matter here). */
  apply(ev) {
    if (ev.type === "call.ended") this.ended = true;
    else if (ev.type === "call.recording") {
      this.state = ev.state === "paused" ? "paused" : ev.state === "stopped" ? null : "recording";
      if (ev.state === "stopped") this.ended = true;
      this.problem = null;
    } else return;
    this.render();
  }

  async toggle() {
    if (this.busy || !this.state || !this.callId) return;
    const want = this.state === "paused" ? "resumed" : "paused";
    this.busy = true;
    this.problem = null;
    this.render();
    try {
      const res = await fetch(`/calls/${encodeURIComponent(this.callId)}/recording`, {
        method: "POST",
        headers: { Authorization: `Bearer ${takeToken()}`, "Content-Type": "application/json" },
        body: JSON.stringify({ state: want }),
      });
      const body = await res.json().catch(() => ({}));
      if (res.ok) this.state = body.state === "paused" ? "paused" : "recording";
      else this.problem = body.error || String(res.status);
    } catch (err) {
      this.problem = String(err.message || err);
    } finally {
      this.busy = false;
      this.render();
    }
  }

  /** Re-render (state change, language switch). */
  render() {
    const show = !!this.state && !this.ended;
    this.el.hidden = !show;
    if (!show) {
      clear(this.el);
      return;
    }
    const paused = this.state === "paused";
    this.el.dataset.state = this.state;
    clear(
      this.el,
      h("span", {
        class: `pill rec-state ${paused ? "paused" : "recording"}`,
        role: "status",
        text: t(paused ? "rec.paused" : "rec.recording"),
      }),
      h("button", {
        type: "button",
        class: "rec-toggle",
        disabled: this.busy,
        "aria-pressed": String(paused),
        text: t(paused ? "rec.resume" : "rec.pause"),
        onclick: () => this.toggle(),
      }),
      this.problem
        ? h("span", { class: "rec-problem", role: "alert", text: t("rec.failed", { reason: this.problem }) })
        : null,
    );
  }
}
