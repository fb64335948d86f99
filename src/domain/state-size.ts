/**
 * A hub's state is one row of its SQLite (`hub_state.json`), which Cloudflare caps at 2 MB
 * (2,000,000 bytes per string or row): a write past it fails ("string or blob too big"), and
 * with it every later event that grows the state, each dead-lettered. The reducers refuse an
 * event whose state would take more than this, as JSON in UTF-8, so the write never fails.
 * Below 2 MB on purpose: the row's other columns, and a topic's hypothesis filled in after
 * its state was full (TopicHub.ensure, outside the reducer: 10,000 characters, at most
 * 60,002 bytes as JSON), still fit.
 */
export const MAX_STATE_BYTES = 1_900_000;

/**
 * The bytes `value` takes as the hub stores it: JSON.stringify, in UTF-8. Counted, not
 * encoded: a TextEncoder would copy up to 2 MB for every event just to read its length.
 * JSON.stringify escapes lone surrogates, so every surrogate here is one of a pair.
 */
export function jsonBytes(value: unknown): number {
  const text = JSON.stringify(value);
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if (c >= 0xd800 && c <= 0xdbff) {
      bytes += 2; // a pair: 2 code units, 4 bytes
      i += 1;
    } else bytes += 2;
  }
  return bytes;
}
