/** Server-sent events wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html). */
const encoder = new TextEncoder();

export function sseEvent(fields: { id?: number | string; event?: string; data: unknown }): Uint8Array {
  let out = "";
  if (fields.id !== undefined) out += `id: ${fields.id}\n`;
  if (fields.event) out += `event: ${fields.event}\n`;
  const data = typeof fields.data === "string" ? fields.data : JSON.stringify(fields.data);
  // A data line may not contain a newline; JSON.stringify never emits one, but strings might.
  for (const line of data.split("\n")) out += `data: ${line}\n`;
  return encoder.encode(`${out}\n`);
}

export function sseRetry(ms: number): Uint8Array {
  return encoder.encode(`retry: ${ms}\n\n`);
}

export function sseComment(text: string): Uint8Array {
  return encoder.encode(`: ${text}\n\n`);
}

/**
 * Miniflare may gzip and buffer a streamed response whole: `identity` and `no-transform`
 * keep every event flowing as it is written.
 */
export const SSE_HEADERS: Record<string, string> = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-transform",
  "Content-Encoding": "identity",
  "X-Accel-Buffering": "no",
};

/** Parses a Last-Event-ID value: a non-negative integer sequence number, or null when absent. */
export function parseLastEventId(raw: string | null | undefined): number | "invalid" | null {
  if (raw === null || raw === undefined || raw === "") return null;
  if (!/^\d{1,15}$/.test(raw.trim())) return "invalid";
  return Number(raw.trim());
}

/** One chunk of several, so a burst of events is one write. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}
