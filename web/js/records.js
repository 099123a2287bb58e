// What the history and call pages share: authorised fetches of the history API, downloads of
// exports (a fetch with the token, saved from a blob: no token in any URL), snippets.

import { h } from "./dom.js";

/** GET/POST `path` with the bearer token; resolves to the Response. */
export function api(token, path, init = {}) {
  return fetch(path, {
    ...init,
    headers: { ...(init.headers || {}), Authorization: `Bearer ${token}` },
  });
}

/** The error text of a failed response (the API's `{"error": ...}` when it sent one). */
export async function failure(res) {
  try {
    const body = await res.json();
    return body.error || `${res.status}`;
  } catch {
    return `${res.status}`;
  }
}

/** Download `path` (with the token) as a file named `name`. */
export async function download(token, path, name) {
  const res = await api(token, path);
  if (!res.ok) throw new Error(await failure(res));
  const url = URL.createObjectURL(await res.blob());
  const a = h("a", { href: url, download: name, hidden: true });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** A snippet's segments ([{text, hit}]) as text nodes and <mark>s (never parsed as HTML). */
export function snippet(segments) {
  return segments.map((s) => (s.hit ? h("mark", { text: s.text }) : s.text));
}
