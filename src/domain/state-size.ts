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
 * The bytes `value` takes as the hub stores it: JSON.stringify, in UTF-8, for JSON data (what
 * a state is: objects, arrays, strings, finite numbers, booleans, null; undefined members
 * left out, as JSON.stringify leaves them). Counted along the structure, not by serialising:
 * the reducers measure the state after every event, and re-serialising up to 2 MB each time
 * cost milliseconds an event. Objects and arrays are remembered by identity (a WeakMap), and
 * the reducers never change one in place (each event makes new records for what it changes
 * and shares the rest), so only what an event changed is counted again.
 */
export function jsonBytes(value: unknown): number {
  if (value === null) return 4;
  switch (typeof value) {
    case "string":
      return stringBytes(value);
    case "number":
      return Number.isFinite(value) ? String(value).length : 4;
    case "boolean":
      return value ? 4 : 5;
    case "object":
      return objectBytes(value as object);
    default:
      return 0; // undefined, functions, symbols: left out (or null in an array: see there)
  }
}

const measured = new WeakMap<object, number>();

function objectBytes(value: object): number {
  const known = measured.get(value);
  if (known !== undefined) return known;
  let bytes: number;
  if (typeof (value as { toJSON?: unknown }).toJSON === "function") {
    bytes = textBytes(JSON.stringify(value)); // a Date, say: not in a state, counted as written
  } else if (Array.isArray(value)) {
    bytes = 2 + Math.max(0, value.length - 1);
    for (const item of value) bytes += item === undefined || typeof item === "function" || typeof item === "symbol" ? 4 : jsonBytes(item);
  } else {
    bytes = 2;
    let members = 0;
    for (const key of Object.keys(value)) {
      const member = (value as Record<string, unknown>)[key];
      if (member === undefined || typeof member === "function" || typeof member === "symbol") continue;
      bytes += stringBytes(key) + 1 + jsonBytes(member);
      members += 1;
    }
    bytes += Math.max(0, members - 1);
  }
  measured.set(value, bytes);
  return bytes;
}

/** A string as JSON.stringify writes it (quoted, escaped; lone surrogates as \uXXXX), in UTF-8. */
function stringBytes(s: string): number {
  let bytes = 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20) bytes += c === 0x08 || c === 0x09 || c === 0x0a || c === 0x0c || c === 0x0d ? 2 : 6;
    else if (c === 0x22 || c === 0x5c) bytes += 2;
    else if (c < 0x80) bytes += 1;
    else if (c < 0x800) bytes += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 4;
        i += 1;
      } else bytes += 6;
    } else if (c >= 0xdc00 && c <= 0xdfff) bytes += 6;
    else bytes += 3;
  }
  return bytes;
}

/** UTF-8 bytes of text that is already JSON (escaped: every surrogate in it is one of a pair). */
function textBytes(text: string): number {
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
