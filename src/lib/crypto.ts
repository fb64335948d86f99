import { fromBase64, fromBase64Url, toBase64, toBase64Url, toHex, utf8 } from "./encoding";
import { ApiError } from "./errors";

/**
 * The shortest SECRETS_KEY accepted, in bytes (UTF-8 of the value as set). `npm start`, the
 * README (`openssl rand -base64 32`: 44 characters) and the benches give 32 random bytes in
 * base64; anything shorter is a typo or a placeholder, not a key.
 */
export const MIN_SECRETS_KEY_BYTES = 32;

/** What is wrong with a SECRETS_KEY as configured, or null when it is usable. Never names the value. */
export function secretsKeyProblem(secretsKey: unknown): string | null {
  if (typeof secretsKey !== "string" || secretsKey.trim() === "") return "SECRETS_KEY is not set";
  if (utf8.encode(secretsKey).length < MIN_SECRETS_KEY_BYTES) return `SECRETS_KEY is shorter than ${MIN_SECRETS_KEY_BYTES} bytes`;
  return null;
}

/** What is wrong with the ADMIN_TOKEN as configured, or null when it is set. */
export function adminTokenProblem(adminToken: unknown): string | null {
  return typeof adminToken !== "string" || adminToken.trim() === "" ? "ADMIN_TOKEN is not set" : null;
}

/** Random id with a kind prefix, e.g. `key_3f9c…`. */
export function newId(prefix: string, bytes = 12): string {
  return `${prefix}_${toHex(crypto.getRandomValues(new Uint8Array(bytes)))}`;
}

export async function sha256Hex(value: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", utf8.encode(value)));
}

/**
 * Constant-time comparison of two strings of a known, fixed length, such as two signatures
 * (lengths may leak; contents do not). For a secret whose length is itself secret, use
 * `secretEquals`.
 */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= (x[i] as number) ^ (y[i] as number);
  return diff === 0;
}

/**
 * Whether `given` equals the secret `expected`, leaking neither its contents nor its length:
 * the SHA-256 digests (always 32 bytes) are compared in constant time, not the strings, which
 * `timingSafeEqual` would refuse at once when the lengths differ.
 */
export async function secretEquals(given: string, expected: string): Promise<boolean> {
  const [x, y] = await Promise.all([crypto.subtle.digest("SHA-256", utf8.encode(given)), crypto.subtle.digest("SHA-256", utf8.encode(expected))]);
  const a = new Uint8Array(x);
  const b = new Uint8Array(y);
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i] as number);
  return diff === 0;
}

/**
 * Every key (secrets at rest, session cookies, stream tokens) is derived here, so this is where
 * a missing or short SECRETS_KEY fails closed: HKDF over empty bytes would give keys anyone can
 * compute, letting them forge cookies and read stored secrets. A route answers 503; a
 * notification delivery and a signed team's sentinel check first and wait, uncounted, until
 * the key is set again (src/notify/deliver.ts, src/cron/sentinels.ts).
 */
async function deriveKey(secretsKey: string, purpose: string, usage: "AES-GCM" | "HMAC"): Promise<CryptoKey> {
  const problem = secretsKeyProblem(secretsKey);
  if (problem) throw new ApiError("unavailable", `This deployment is misconfigured: ${problem}, so nothing that is signed or encrypted can be used (see README, Deploy).`);
  const base = await crypto.subtle.importKey("raw", utf8.encode(secretsKey), "HKDF", false, ["deriveKey"]);
  const algo = usage === "AES-GCM" ? { name: "AES-GCM", length: 256 } : { name: "HMAC", hash: "SHA-256", length: 256 };
  const uses: Array<"encrypt" | "decrypt" | "sign" | "verify"> = usage === "AES-GCM" ? ["encrypt", "decrypt"] : ["sign", "verify"];
  return crypto.subtle.deriveKey({ name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8.encode(`switchboard:${purpose}`) }, base, algo, false, uses);
}

/** Encrypts a team secret for storage: `v1.<iv>.<ciphertext>` (AES-256-GCM, key from SECRETS_KEY by HKDF). */
export async function encryptSecret(secretsKey: string, plaintext: string, context: string): Promise<string> {
  const key = await deriveKey(secretsKey, "secrets", "AES-GCM");
  const iv = crypto.getRandomValues(new Uint8Array(12));
  // The context (team id and field) is authenticated, so a ciphertext copied to another row fails.
  const ct = await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8.encode(context) }, key, utf8.encode(plaintext));
  return `v1.${toBase64(iv)}.${toBase64(new Uint8Array(ct))}`;
}

export async function decryptSecret(secretsKey: string, stored: string, context: string): Promise<string> {
  const [version, iv, ct] = stored.split(".");
  if (version !== "v1" || !iv || !ct) throw new Error("unknown secret format");
  const key = await deriveKey(secretsKey, "secrets", "AES-GCM");
  const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64(iv), additionalData: utf8.encode(context) }, key, fromBase64(ct));
  return new TextDecoder().decode(pt);
}

/** A signed, expiring token (`payload.signature`, base64url) for stream access and browser sessions. */
export async function signToken(secretsKey: string, purpose: string, payload: Record<string, unknown>): Promise<string> {
  const key = await deriveKey(secretsKey, purpose, "HMAC");
  const body = toBase64Url(utf8.encode(JSON.stringify(payload)));
  const sig = await crypto.subtle.sign("HMAC", key, utf8.encode(body));
  return `${body}.${toBase64Url(new Uint8Array(sig))}`;
}

export async function verifyToken<T extends { exp: number }>(secretsKey: string, purpose: string, token: string): Promise<T | null> {
  const [body, sig] = token.split(".");
  if (!body || !sig) return null;
  const key = await deriveKey(secretsKey, purpose, "HMAC");
  let ok = false;
  try {
    ok = await crypto.subtle.verify("HMAC", key, fromBase64Url(sig), utf8.encode(body));
  } catch {
    return null;
  }
  if (!ok) return null;
  try {
    const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(body))) as T;
    return typeof payload.exp === "number" && payload.exp > Date.now() ? payload : null;
  } catch {
    return null;
  }
}
