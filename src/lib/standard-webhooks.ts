import { fromBase64, toBase64, utf8 } from "./encoding";
import { timingSafeEqual } from "./crypto";

/** Standard Webhooks (https://www.standardwebhooks.com): HMAC-SHA256 over `id.timestamp.body`. */
export const TOLERANCE_SECONDS = 5 * 60;
export const SECRET_PATTERN = /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/;
/** The shortest key a secret may carry (Standard Webhooks: 24 to 64 bytes). */
export const MIN_SECRET_BYTES = 24;

/**
 * The HMAC key a secret carries (`whsec_` and base64, the prefix optional as in the Standard
 * Webhooks libraries), or null when its base64 does not decode (SECRET_PATTERN alone lets
 * through lengths atob refuses, such as 33 characters) or the key is under MIN_SECRET_BYTES.
 */
export function secretKeyBytes(secret: string): Uint8Array<ArrayBuffer> | null {
  const b64 = secret.replace(/^whsec_/, "");
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) return null;
  let raw: Uint8Array<ArrayBuffer>;
  try {
    raw = fromBase64(b64);
  } catch {
    return null;
  }
  return raw.byteLength >= MIN_SECRET_BYTES ? raw : null;
}

/** Thrown by signPayload for a secret that carries no usable key. */
export class UnusableSecretError extends Error {
  constructor() {
    super(`not a usable Standard Webhooks secret: whsec_ followed by the base64 of at least ${MIN_SECRET_BYTES} bytes`);
    this.name = "UnusableSecretError";
  }
}

/**
 * HMAC-SHA256 of `id.timestamp.` and the body's bytes. A body given as bytes is signed as it
 * is: decoding it first would drop a leading BOM (TextDecoder does) or replace invalid UTF-8,
 * and the signature would no longer be over what the sender signed.
 */
async function hmac(raw: Uint8Array<ArrayBuffer>, webhookId: string, timestampSeconds: number, body: string | Uint8Array): Promise<string> {
  const head = utf8.encode(`${webhookId}.${timestampSeconds}.`);
  const tail = typeof body === "string" ? utf8.encode(body) : body;
  const content = new Uint8Array(head.byteLength + tail.byteLength);
  content.set(head);
  content.set(tail, head.byteLength);
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, content)));
}

/** The `webhook-signature` value for a body (a string is signed as UTF-8): `v1,<base64>`. The CLI and tests sign with this too. */
export async function signPayload(secret: string, webhookId: string, timestampSeconds: number, body: string | Uint8Array): Promise<string> {
  const raw = secretKeyBytes(secret);
  if (!raw) throw new UnusableSecretError();
  return `v1,${await hmac(raw, webhookId, timestampSeconds, body)}`;
}

/** `unusable_secret`: the stored secret itself is broken, whatever the request carried. */
export type VerifyFailure = "missing_headers" | "bad_timestamp" | "expired" | "bad_signature" | "unusable_secret";

/**
 * Checks the three headers against the raw body: its bytes as received (a string is taken as
 * UTF-8, which loses a BOM its decoding dropped). `toleranceSeconds: null` skips the time
 * window (a sentinel is swept late by design); replay detection is the caller's, by id.
 */
export async function verifyPayload(
  secret: string,
  headers: { id: string | null; timestamp: string | null; signature: string | null },
  body: string | Uint8Array,
  nowSeconds: number,
  toleranceSeconds: number | null = TOLERANCE_SECONDS,
): Promise<{ ok: true } | { ok: false; reason: VerifyFailure }> {
  // Checked before the request: no request can pass a secret that carries no key, and the
  // caller must tell that (a configuration to fix) from a bad signature, never throw.
  const raw = secretKeyBytes(secret);
  if (!raw) return { ok: false, reason: "unusable_secret" };
  if (!headers.id || !headers.timestamp || !headers.signature) return { ok: false, reason: "missing_headers" };
  if (!/^\d{1,12}$/.test(headers.timestamp)) return { ok: false, reason: "bad_timestamp" };
  const ts = Number(headers.timestamp);
  if (toleranceSeconds !== null && Math.abs(nowSeconds - ts) > toleranceSeconds) return { ok: false, reason: "expired" };
  const expected = await hmac(raw, headers.id, ts, body);
  // The header may carry several space-separated signatures (during secret rotation).
  for (const part of headers.signature.split(" ")) {
    const [version, sig] = part.split(",", 2);
    if (version === "v1" && sig && timingSafeEqual(sig, expected)) return { ok: true };
  }
  return { ok: false, reason: "bad_signature" };
}
