// Read a `metrics` event: the one shape of the contract (coach/events.py `Metrics`,
// docs/events.schema.json):
// {callTime, talkRatio: {agent, customer}, longestSilence, silenceTotal,
//  overtalk: {count, seconds}, speakers: {agent: {talkTime, utterances, words, wordsPerMinute}, ...}}.
// `talkRatio` and `speakers` hold only the speakers heard so far. The bus has validated the
// event; a field that is still missing or not a number is simply not shown (null).

function num(value) {
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

function field(obj, name) {
  return obj && typeof obj === "object" ? num(obj[name]) : null;
}

/** The agent's share of the talking between agent and customer, or null before either talked. */
function agentShare(ratio) {
  const agent = field(ratio, "agent");
  const customer = field(ratio, "customer");
  if (agent === null && customer === null) return null;
  const total = (agent ?? 0) + (customer ?? 0);
  return total > 0 ? Math.min(1, Math.max(0, (agent ?? 0) / total)) : null;
}

/**
 * Normalised view of a metrics event: every field may be null.
 * @returns {{agentShare: number|null, agentTalk: number|null, customerTalk: number|null,
 *   silenceTotal: number|null, longestSilence: number|null, overtalkCount: number|null,
 *   overtalkSeconds: number|null, callTime: number|null}}
 */
export function readMetrics(ev) {
  const speakers = ev.speakers && typeof ev.speakers === "object" ? ev.speakers : {};
  return {
    agentShare: agentShare(ev.talkRatio),
    agentTalk: field(speakers.agent, "talkTime"),
    customerTalk: field(speakers.customer, "talkTime"),
    silenceTotal: num(ev.silenceTotal),
    longestSilence: num(ev.longestSilence),
    overtalkCount: field(ev.overtalk, "count"),
    overtalkSeconds: field(ev.overtalk, "seconds"),
    callTime: num(ev.callTime),
  };
}
