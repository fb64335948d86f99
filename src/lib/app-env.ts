import type { Scope } from "../domain/scopes";

export interface AuthContext {
  team_id: string;
  key_id: string;
  scopes: Scope[];
  /**
   * Set when the request came with the browser sign-in cookie (or a stream token minted with
   * one): the key's session epoch at sign-in. Signing out moves the key's epoch on, which ends
   * every cookie and cookie-minted token carrying an older one.
   */
  session_epoch?: number;
}

/** The Hono environment of every router: bindings from `wrangler types`, and per-request values. */
export interface AppEnv {
  Bindings: Env;
  Variables: { requestId: string; auth: AuthContext };
}
