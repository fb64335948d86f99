/**
 * Key scopes. `grants` lists what a route may require that the scope satisfies:
 * an operator can do everything, an agent reads and reports, a read key only reads.
 */
export const SCOPES = {
  operator: { grants: ["operator", "agent", "read"] },
  agent: { grants: ["agent", "read"] },
  read: { grants: ["read"] },
} as const satisfies Record<string, { grants: readonly string[] }>;

export type Scope = keyof typeof SCOPES;
export const SCOPE_NAMES = Object.keys(SCOPES) as [Scope, ...Scope[]];
