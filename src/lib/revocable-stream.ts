/**
 * A live stream is authorised once, when it opens; without more, a key deleted afterwards
 * (leaked, say) would go on receiving events for as long as the connection lasts, heartbeats
 * keeping it alive. So the stream is passed on through a native identity stream (no
 * JavaScript per chunk) while a timer asks, every `everyMs`, whether the key behind it still
 * exists (in D1, not the key cache), and ends the stream cleanly when it does not: the client's reconnect is then
 * refused with 401. A failed check (D1 unreachable) keeps the stream and asks again later.
 */
/** With the 10 s for which a check's answer is shared (KEY_CHECK_SHARE_MS): within a minute. */
export const KEY_RECHECK_MS = 50_000;

export function endWhenKeyDeleted(body: ReadableStream<Uint8Array>, keyExists: () => Promise<boolean>, everyMs: number): ReadableStream<Uint8Array> {
  const { readable, writable } = new IdentityTransformStream();
  const revoked = new AbortController();
  let checking = false;
  const timer = setInterval(async () => {
    if (checking) return;
    checking = true;
    try {
      if (!(await keyExists())) revoked.abort(new Error("the key was deleted"));
    } catch {
      // Not known to be deleted: keep streaming.
    } finally {
      checking = false;
    }
  }, everyMs);
  // preventAbort, so that when the pipe stops (revocation; or the hub restarted, its stream
  // broken) the source is cancelled (the hub forgets the subscriber) and the client's side is
  // closed rather than broken: it sees an ordinary end and reconnects with Last-Event-ID.
  body
    .pipeTo(writable, { signal: revoked.signal, preventAbort: true })
    .catch(() => writable.close().catch(() => {}))
    .finally(() => clearInterval(timer));
  return readable;
}
