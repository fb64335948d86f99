import type { Scope } from "../domain/scopes";

export interface AuthContext {
  team_id: string;
  key_id: string;
  scopes: Scope[];
}

/** The Hono environment of every router: bindings from `wrangler types`, and per-request values. */
export interface AppEnv {
  Bindings: Env;
  Variables: { requestId: string; auth: AuthContext };
}
