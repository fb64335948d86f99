import { fromBase64, fromBase64Url, toBase64, toBase64Url, toHex, utf8 } from "./encoding";

/** Random id with a kind prefix, e.g. `key_3f9c…`. */
export function newId(prefix: string, bytes = 12): string {
  return `${prefix}_${toHex(crypto.getRandomValues(new Uint8Array(bytes)))}`;
}

export async function sha256Hex(value: string): Promise<string> {
  return toHex(await crypto.subtle.digest("SHA-256", utf8.encode(value)));
}

/** Constant-time comparison of two strings (lengths may leak; contents do not). */
export function timingSafeEqual(a: string, b: string): boolean {
  const x = utf8.encode(a);
  const y = utf8.encode(b);
  if (x.length !== y.length) return false;
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= (x[i] as number) ^ (y[i] as number);
  return diff === 0;
}

async function deriveKey(secretsKey: string, purpose: string, usage: "AES-GCM" | "HMAC"): Promise<CryptoKey> {
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
