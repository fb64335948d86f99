import { z } from "zod";

/** JSON values: what crosses a Durable Object RPC boundary intact (`unknown` does not type there). */
export type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/**
 * How deep a client's JSON may nest. JSON.parse takes any depth, but recursive code after it
 * (zod, structured clone, the OpenAPI generator) overflows the stack long before 1 MiB of
 * `[[[[…`, so deeper bodies are refused up front with a 400 naming where.
 */
export const MAX_JSON_DEPTH = 32;

/** The path at which `value` first nests deeper than `max` levels, or null. */
export function tooDeepAt(value: unknown, max = MAX_JSON_DEPTH): string | null {
  return walkJson(value, max, false)?.path ?? null;
}

/** A lone surrogate: with the `u` flag a proper pair is one code point and does not match. */
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

export interface UnfitJson {
  rule: "depth" | "proto" | "unicode";
  path: string;
  message: string;
}

/**
 * Where a client's parsed JSON body first breaks a rule every request shares, and why, or
 * null: nested deeper than `max` levels; a `__proto__` key (JSON.parse makes it an own key,
 * but a record built from it drops it silently, so `{"max_running":{"__proto__":5}}` would
 * change nothing instead of being refused); a string or key that is not valid Unicode (a
 * lone surrogate such as `"\ud800"`, which storage would turn into U+FFFD). Not `strict`:
 * the depth only.
 */
export function unfitJsonAt(value: unknown, strict = true, max = MAX_JSON_DEPTH): UnfitJson | null {
  return walkJson(value, max, strict);
}

/** One walk for both: iterative on purpose; `strict` adds the key and string rules. */
function walkJson(value: unknown, max: number, strict: boolean): UnfitJson | null {
  const at = (path: string[]) => path.join(".") || "(body)";
  if (strict && typeof value === "string" && LONE_SURROGATE.test(value)) return lone(at([]));
  const stack: [unknown, string[]][] = [[value, []]];
  while (stack.length > 0) {
    const [v, path] = stack.pop() as [unknown, string[]];
    if (v === null || typeof v !== "object") continue;
    if (path.length >= max) return { rule: "depth", path: at(path), message: `Nested deeper than ${max} levels` };
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x] as const) : Object.entries(v);
    for (const [k, x] of entries) {
      if (strict) {
        if (k === "__proto__") return { rule: "proto", path: at([...path, k]), message: "__proto__ is no field of any request" };
        if (LONE_SURROGATE.test(k)) return { rule: "unicode", path: at([...path, k]), message: "Not valid Unicode: a key with a lone surrogate" };
        // Strings are checked here, not stacked: no path is built for a value that is fine.
        if (typeof x === "string" && LONE_SURROGATE.test(x)) return lone(at([...path, k]));
      }
      if (x !== null && typeof x === "object") stack.push([x, [...path, k]]);
    }
  }
  return null;
}

const lone = (path: string): UnfitJson => ({ rule: "unicode", path, message: "Not valid Unicode: a lone surrogate (\\ud800–\\udfff without its pair)" });

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
