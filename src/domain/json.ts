import { z } from "zod";

/** JSON values: what crosses a Durable Object RPC boundary intact (`unknown` does not type there). */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/**
 * How deep a client's JSON may nest. JSON.parse takes any depth, but recursive code after it
 * (zod, structured clone, the OpenAPI generator) overflows the stack long before 1 MiB of
 * `[[[[…`, so deeper bodies are refused up front with a 400 naming where.
 */
export const MAX_JSON_DEPTH = 32;

/** The path at which `value` first nests deeper than `max` levels, or null. Iterative on purpose. */
export function tooDeepAt(value: unknown, max = MAX_JSON_DEPTH): string | null {
  const stack: [unknown, string[]][] = [[value, []]];
  while (stack.length > 0) {
    const [v, path] = stack.pop() as [unknown, string[]];
    if (v === null || typeof v !== "object") continue;
    if (path.length >= max) return path.join(".") || "(body)";
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    for (const [k, x] of entries) if (x !== null && typeof x === "object") stack.push([x, [...path, k]]);
  }
  return null;
}

function isJson(value: unknown): boolean {
  const t = typeof value;
  if (value === null || t === "string" || t === "boolean") return true;
  if (t === "number") return Number.isFinite(value);
  if (t !== "object") return false;
  // Bodies come from JSON.parse, so anything object-shaped is JSON; the depth bound is the check.
  return tooDeepAt(value) === null;
}

/**
 * Any JSON value, checked without recursion (a recursive `z.lazy` schema overflowed on deep
 * input and sent the OpenAPI generator into endless recursion). The cast gives the check its type.
 */
export const jsonSchema = z.unknown().refine(isJson, { message: `Must be JSON nested at most ${MAX_JSON_DEPTH} levels deep` }) as unknown as z.ZodType<Json>;
