import { z } from "zod";
import { fromBase64Url, toBase64Url, utf8 } from "./encoding";
import { ApiError } from "./errors";

export const listQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(500).optional(),
});

/** An opaque keyset cursor: the sort key of the last item returned. */
export function encodeCursor(key: (string | number)[]): string {
  return toBase64Url(utf8.encode(JSON.stringify(key)));
}

export function decodeCursor(cursor: string | undefined, arity: number): (string | number)[] | null {
  if (!cursor) return null;
  try {
    const key = JSON.parse(new TextDecoder().decode(fromBase64Url(cursor))) as unknown;
    if (Array.isArray(key) && key.length === arity && key.every((k) => typeof k === "string" || typeof k === "number")) return key;
  } catch {
    // fall through
  }
  throw new ApiError("validation", "The cursor is not one this API gave out.", [{ path: "cursor", message: "invalid cursor" }]);
}

/** Given limit+1 rows, returns the page and the cursor of its last item when more follow. */
export function page<T>(rows: T[], limit: number, keyOf: (row: T) => (string | number)[]) {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, next_cursor: rows.length > limit && last ? encodeCursor(keyOf(last)) : null };
}

export function listSchema<T extends z.ZodType>(item: T) {
  return z.object({ items: z.array(item), next_cursor: z.string().nullable() });
}
