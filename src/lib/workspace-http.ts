/**
 * Conditional and range requests for workspace GET/HEAD, decided here from the object's
 * metadata as RFC 9110 lays them out, rather than by handing the client's headers to R2:
 *
 * - R2's `get(key, { onlyIf: headers })` answers a failed If-Match and a matching
 *   If-None-Match alike (an object without a body), so a 412 would come out as a 304;
 * - R2's `range: headers` takes an unknown unit or an unsatisfiable range without
 *   telling us (locally the whole body, marked as a range), and in production may throw
 *   instead, which would be a 500 for a client's header.
 *
 * So the route reads the object's metadata, evaluates the preconditions (§13.2.2) and the
 * range (§14) here, and asks R2 only for a range already known to be inside the object.
 */

/** What the preconditions need of the stored object. */
export interface Validators {
  /** The quoted strong entity-tag, as R2's `httpEtag`. */
  etag: string;
  /** The upload time; HTTP dates have whole seconds, so it is compared truncated. */
  uploaded: Date;
}

export type PreconditionOutcome = "proceed" | "not_modified" | "failed";

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

/** An HTTP-date, in whole seconds; null when it does not parse (the field is then ignored). */
function httpDate(value: string): number | null {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : Math.floor(ms / 1000);
}

interface EntityTag {
  weak: boolean;
  opaque: string;
}

/**
 * The entity-tags of an If-Match / If-None-Match list, or "*". A bare token (no quotes) is
 * taken as a tag too: some clients strip the quotes, and such a token can only ever match
 * the tag it names.
 */
function entityTags(value: string): EntityTag[] | "*" {
  if (value.trim() === "*") return "*";
  const tags: EntityTag[] = [];
  for (const part of value.split(",")) {
    const item = part.trim();
    if (!item) continue; // empty list elements are allowed and ignored (RFC 9110 §5.6.1)
    const weak = item.startsWith("W/");
    const tag = weak ? item.slice(2) : item;
    const quoted = /^"([^"]*)"$/.exec(tag);
    tags.push({ weak, opaque: quoted ? (quoted[1] as string) : tag });
  }
  return tags;
}

/** The opaque part of our own tag (`"abc"` → `abc`). */
const opaqueOf = (etag: string) => etag.replace(/^W\//, "").replace(/^"(.*)"$/, "$1");

/**
 * RFC 9110 §13.2.2, for GET and HEAD: If-Match (else If-Unmodified-Since) false → 412;
 * then If-None-Match (else If-Modified-Since) false → 304. Only called when the file
 * exists: a missing file is 404 whatever the conditions (§13.2.1, the response without
 * them would not be 2xx).
 */
export function evaluatePreconditions(headers: Headers, v: Validators): PreconditionOutcome {
  const current = opaqueOf(v.etag);
  const lastModified = seconds(v.uploaded);

  const ifMatch = headers.get("If-Match");
  if (ifMatch !== null) {
    const tags = entityTags(ifMatch);
    // Strong comparison: a weak tag never matches.
    if (tags !== "*" && !tags.some((t) => !t.weak && t.opaque === current)) return "failed";
  } else {
    const ius = headers.get("If-Unmodified-Since");
    const date = ius === null ? null : httpDate(ius);
    if (date !== null && lastModified > date) return "failed";
  }

  const ifNoneMatch = headers.get("If-None-Match");
  if (ifNoneMatch !== null) {
    const tags = entityTags(ifNoneMatch);
    // Weak comparison: W/"x" matches "x".
    if (tags === "*" || tags.some((t) => t.opaque === current)) return "not_modified";
  } else {
    const ims = headers.get("If-Modified-Since");
    const date = ims === null ? null : httpDate(ims);
    if (date !== null && lastModified <= date) return "not_modified";
  }
  return "proceed";
}

/**
 * RFC 9110 §13.2.2 for PUT and DELETE, which change the file: whether the request may go on.
 * If-Match (else If-Unmodified-Since) must hold, and If-None-Match must not match: `*` with
 * a file there (a create-only PUT), or any tag by weak comparison. `current` is null when no
 * file exists: then If-Match fails and If-None-Match holds. If-Modified-Since is for reads.
 */
export function writePreconditionsHold(headers: Headers, current: Validators | null): boolean {
  const ifMatch = headers.get("If-Match");
  if (ifMatch !== null) {
    if (current === null) return false;
    const tags = entityTags(ifMatch);
    if (tags !== "*" && !tags.some((t) => !t.weak && t.opaque === opaqueOf(current.etag))) return false;
  } else if (current !== null) {
    const ius = headers.get("If-Unmodified-Since");
    const date = ius === null ? null : httpDate(ius);
    if (date !== null && seconds(current.uploaded) > date) return false;
  }
  const ifNoneMatch = headers.get("If-None-Match");
  if (ifNoneMatch !== null && current !== null) {
    const tags = entityTags(ifNoneMatch);
    if (tags === "*" || tags.some((t) => t.opaque === opaqueOf(current.etag))) return false;
  }
  return true;
}

/**
 * The same conditions for R2 to check again as it writes (a PUT's `onlyIf`), so a change
 * between our read and the write cannot slip through: the entity-tags re-quoted in one form
 * R2 parses. Undefined when the request set none.
 */
export function writeConditions(headers: Headers): Headers | undefined {
  const out = new Headers();
  for (const name of ["If-Match", "If-None-Match"] as const) {
    const value = headers.get(name);
    if (value === null) continue;
    const tags = entityTags(value);
    // An empty list (`If-None-Match: ,`) names no tag: nothing for R2 to check (it would refuse it).
    if (tags !== "*" && tags.length === 0) continue;
    out.set(name, tags === "*" ? "*" : tags.map((t) => `${t.weak ? "W/" : ""}"${t.opaque}"`).join(", "));
  }
  // An HTTP date has whole seconds and the file's upload time has milliseconds: "not modified
  // since 12:00:05" holds for an upload at 12:00:05.964. R2 checks `uploaded < date` (strictly,
  // at either granularity), so it is asked about the next second.
  const ius = headers.get("If-Unmodified-Since");
  const iusDate = ius === null ? null : httpDate(ius);
  if (iusDate !== null && headers.get("If-Match") === null) out.set("If-Unmodified-Since", new Date((iusDate + 1) * 1000).toUTCString());
  return [...out.keys()].length > 0 ? out : undefined;
}

/** A parsed single byte range: `first-[last]` or `-suffix`. */
export type ByteRangeSpec = { first: number; last: number | null } | { suffix: number };

/**
 * The one byte range a Range field asks for, or null when the field is to be ignored and
 * the whole file sent (200): absent, another unit than bytes (§14.1: a unit we do not
 * support is ignored), malformed (§14.2), or several ranges. Several ranges would need a
 * multipart/byteranges body; we choose to answer them with the whole file, which §14.2
 * allows ("a server MAY ignore the Range header field"), and is what a client that asked
 * for several parts can always use.
 */
export function parseRange(value: string | null): ByteRangeSpec | null {
  if (value === null) return null;
  const m = /^\s*([!#$%&'*+.^_`|~0-9A-Za-z-]+)=(.*)$/.exec(value);
  if (!m || (m[1] as string).toLowerCase() !== "bytes") return null;
  const specs = (m[2] as string)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (specs.length !== 1) return null;
  const spec = specs[0] as string;
  const suffix = /^-(\d+)$/.exec(spec);
  if (suffix) return { suffix: Number(suffix[1]) };
  const range = /^(\d+)-(\d*)$/.exec(spec);
  if (!range) return null;
  const first = Number(range[1]);
  const last = range[2] === "" ? null : Number(range[2]);
  if (last !== null && last < first) return null; // invalid, so ignored (§14.1.1)
  return { first, last };
}

/** The bytes to send of a file of `size` bytes, or "unsatisfiable" (416, §14.1.1 / §15.5.17). */
export function resolveRange(spec: ByteRangeSpec, size: number): { offset: number; length: number } | "unsatisfiable" {
  if ("suffix" in spec) {
    if (spec.suffix === 0 || size === 0) return "unsatisfiable";
    const offset = Math.max(0, size - spec.suffix);
    return { offset, length: size - offset };
  }
  if (spec.first >= size) return "unsatisfiable";
  const last = Math.min(spec.last ?? size - 1, size - 1);
  return { offset: spec.first, length: last - spec.first + 1 };
}

/**
 * If-Range (§13.1.5): the range applies only while the file is the one the client has
 * part of: the same strong tag, or exactly its Last-Modified. Otherwise the whole file.
 */
export function ifRangeHolds(headers: Headers, v: Validators): boolean {
  const value = headers.get("If-Range");
  if (value === null) return true;
  const trimmed = value.trim();
  if (trimmed.startsWith('"') || trimmed.startsWith("W/")) {
    const tags = entityTags(trimmed);
    return tags !== "*" && tags.length === 1 && !(tags[0] as EntityTag).weak && (tags[0] as EntityTag).opaque === opaqueOf(v.etag);
  }
  const date = httpDate(trimmed);
  return date !== null && date === seconds(v.uploaded);
}

/**
 * A problem+json answer for the statuses the app's closed problem set has no code for
 * (412, 416): same shape as the others (type, title, status, detail, errors, request_id).
 */
export function workspaceProblem(status: 412 | 416, detail: string, requestId: string, headers: Record<string, string> = {}): Response {
  const [slug, title] = status === 412 ? ["precondition-failed", "Precondition failed"] : ["range-not-satisfiable", "Range not satisfiable"];
  const body = { type: `https://switchboard.dev/problems/${slug}`, title, status, detail, errors: [], request_id: requestId };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "Content-Type": "application/problem+json", ...(requestId ? { "X-Request-Id": requestId } : {}), ...headers },
  });
}

/**
 * Headers that keep a stored file inert in a browser. Anyone with an agent key can upload any
 * content type, and the API's origin is where an operator's sign-in cookie lives: served as
 * uploaded, an HTML file would run its scripts with that cookie. So every file is a download
 * (`attachment`, whatever disposition the uploader gave), never sniffed into something else,
 * and sandboxed with nothing allowed should a browser render it anyway.
 */
export function inertFileHeaders(path: string): Record<string, string> {
  const name = path.slice(path.lastIndexOf("/") + 1);
  // RFC 8187 ext-value: percent-encode everything outside attr-char (encodeURIComponent keeps ' ( ) *).
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase()}`);
  return {
    "Content-Disposition": `attachment; filename*=UTF-8''${encoded}`,
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
  };
}
