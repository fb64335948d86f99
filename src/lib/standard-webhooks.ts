import { fromBase64, toBase64, utf8 } from "./encoding";
import { timingSafeEqual } from "./crypto";

/** Standard Webhooks (https://www.standardwebhooks.com): HMAC-SHA256 over `id.timestamp.body`. */
export const TOLERANCE_SECONDS = 5 * 60;
export const SECRET_PATTERN = /^whsec_[A-Za-z0-9+/]{32,}={0,2}$/;

async function hmac(secret: string, content: string): Promise<string> {
  const raw = fromBase64(secret.replace(/^whsec_/, ""));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toBase64(new Uint8Array(await crypto.subtle.sign("HMAC", key, utf8.encode(content))));
}

/** The `webhook-signature` value for a body: `v1,<base64>`. The CLI and tests sign with this too. */
export async function signPayload(secret: string, webhookId: string, timestampSeconds: number, body: string): Promise<string> {
  return `v1,${await hmac(secret, `${webhookId}.${timestampSeconds}.${body}`)}`;
}

export type VerifyFailure = "missing_headers" | "bad_timestamp" | "expired" | "bad_signature";

/**
 * Checks the three headers against the raw body. `toleranceSeconds: null` skips the time
 * window (a sentinel is swept late by design); replay detection is the caller's, by id.
 */
export async function verifyPayload(
  secret: string,
  headers: { id: string | null; timestamp: string | null; signature: string | null },
  body: string,
  nowSeconds: number,
  toleranceSeconds: number | null = TOLERANCE_SECONDS,
): Promise<{ ok: true } | { ok: false; reason: VerifyFailure }> {
  if (!headers.id || !headers.timestamp || !headers.signature) return { ok: false, reason: "missing_headers" };
  if (!/^\d{1,12}$/.test(headers.timestamp)) return { ok: false, reason: "bad_timestamp" };
  const ts = Number(headers.timestamp);
  if (toleranceSeconds !== null && Math.abs(nowSeconds - ts) > toleranceSeconds) return { ok: false, reason: "expired" };
  const expected = await hmac(secret, `${headers.id}.${ts}.${body}`);
  // The header may carry several space-separated signatures (during secret rotation).
  for (const part of headers.signature.split(" ")) {
    const [version, sig] = part.split(",", 2);
    if (version === "v1" && sig && timingSafeEqual(sig, expected)) return { ok: true };
  }
  return { ok: false, reason: "bad_signature" };
}
