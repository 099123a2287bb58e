// Read a `metrics` event defensively. Its shape belongs to the orchestrator; what we know:
// {callTime, talkRatio: {agent, customer}, longestSilence, silenceTotal,
//  overtalk: {count, seconds}, speakers: {agent: {talkTime, ...}, customer: {...}}}.
// Other plausible spellings are accepted too; anything missing is simply not shown.

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function pick(obj, ...names) {
  if (!obj || typeof obj !== "object") return null;
  for (const name of names) {
    const v = num(obj[name]);
    if (v !== null) return v;
  }
  return null;
}

function talkOf(ev, speaker) {
  const s = (ev.speakers && ev.speakers[speaker]) || ev[speaker];
  let v = pick(s, "talkTime", "talk", "talkSeconds", "talk_s", "speech");
  if (v !== null) return v;
  const ms = pick(s, "talkMs", "talk_ms");
  if (ms !== null) return ms / 1000;
  const tt = ev.talkTime || ev.talk;
  v = pick(tt, speaker);
  return v;
}

/**
 * Normalised view of a metrics event: every field may be null.
 * @returns {{agentShare: number|null, agentTalk: number|null, customerTalk: number|null,
 *   silenceTotal: number|null, longestSilence: number|null, silenceNow: number|null,
 *   overtalkCount: number|null, overtalkSeconds: number|null, callTime: number|null}}
 */
export function readMetrics(ev) {
  const out = {
    agentShare: null,
    agentTalk: talkOf(ev, "agent"),
    customerTalk: talkOf(ev, "customer"),
    silenceTotal: null,
    longestSilence: null,
    silenceNow: null,
    overtalkCount: null,
    overtalkSeconds: null,
    callTime: pick(ev, "callTime", "duration", "elapsed"),
  };
  const ratio = ev.talkRatio ?? ev.talk_ratio;
  if (num(ratio) !== null) {
    // A bare number is read as the agent's share of the talking.
    out.agentShare = ratio > 1 ? ratio / 100 : ratio;
  } else if (ratio && typeof ratio === "object") {
    const a = num(ratio.agent);
    const c = num(ratio.customer);
    if (a !== null && c !== null && a + c > 0) out.agentShare = a / (a + c);
    else if (a !== null) out.agentShare = a > 1 ? a / 100 : a;
  }
  if (out.agentShare === null && out.agentTalk !== null && out.customerTalk !== null) {
    const total = out.agentTalk + out.customerTalk;
    if (total > 0) out.agentShare = out.agentTalk / total;
  }
  const silence = ev.silence;
  if (num(silence) !== null) out.silenceTotal = silence;
  out.silenceTotal ??= pick(ev, "silenceTotal", "silence_total", "totalSilence");
  out.silenceTotal ??= pick(silence, "total", "seconds");
  out.longestSilence = pick(ev, "longestSilence", "longest_silence") ?? pick(silence, "longest", "max");
  out.silenceNow =
    pick(ev, "currentSilence", "silenceNow", "current_silence") ?? pick(silence, "current", "now");
  const overtalk = ev.overtalk ?? ev.overTalk;
  if (num(overtalk) !== null) out.overtalkSeconds = overtalk;
  else if (overtalk && typeof overtalk === "object") {
    out.overtalkCount = pick(overtalk, "count", "n");
    out.overtalkSeconds = pick(overtalk, "seconds", "total", "duration");
  }
  if (out.agentShare !== null) out.agentShare = Math.min(1, Math.max(0, out.agentShare));
  return out;
}
