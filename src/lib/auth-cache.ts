import { LRUCache } from "lru-cache";
import type { AuthContext } from "./app-env";

/** A key as its row says: who it is, and its session epoch (what signing out moves on). */
export interface KeyRecord {
  auth: AuthContext;
  sessionEpoch: number;
}

/**
 * What this isolate remembers between requests, so an agent's callback costs no D1 round
 * trip once warm (each is a network hop in production and most of the CPU locally).
 *
 * - API keys found by hash or id, for AUTH_CACHE_TTL_MS. Deleting a key forgets it here at
 *   once; other isolates stop accepting it within the TTL. Unknown keys are never cached.
 *   Signing out (which moves the key's session epoch on) forgets it the same way, so a
 *   signed-out cookie is refused at once here and within the TTL elsewhere.
 * - A team's signing secret (decrypted, in memory only), for the same TTL; `PATCH /v1/team`
 *   forgets it here at once.
 * - Which sessions exist: sessions are never deleted, so a session seen once stays known.
 */
export const AUTH_CACHE_TTL_MS = 30_000;

const keysByHash = new LRUCache<string, KeyRecord>({ max: 10_000, ttl: AUTH_CACHE_TTL_MS });
const keysById = new LRUCache<string, KeyRecord>({ max: 10_000, ttl: AUTH_CACHE_TTL_MS });
const signingSecrets = new LRUCache<string, { secret: string | null }>({ max: 10_000, ttl: AUTH_CACHE_TTL_MS });
const knownSessions = new LRUCache<string, true>({ max: 100_000 });

export const keyCache = {
  byHash: (hash: string) => keysByHash.get(hash),
  byId: (id: string) => keysById.get(id),
  remember(hash: string | null, key: KeyRecord): void {
    if (hash) keysByHash.set(hash, key);
    keysById.set(key.auth.key_id, key);
  },
  forget(keyId: string): void {
    keysById.delete(keyId);
    for (const [hash, key] of keysByHash.entries()) if (key.auth.key_id === keyId) keysByHash.delete(hash);
  },
};

export const signingSecretCache = {
  get: (teamId: string) => signingSecrets.get(teamId),
  remember: (teamId: string, secret: string | null) => void signingSecrets.set(teamId, { secret }),
  forget: (teamId: string) => void signingSecrets.delete(teamId),
};

export const sessionCache = {
  has: (teamId: string, sessionId: string) => knownSessions.has(`${teamId}\u0000${sessionId}`),
  remember: (teamId: string, sessionId: string) => void knownSessions.set(`${teamId}\u0000${sessionId}`, true),
};
