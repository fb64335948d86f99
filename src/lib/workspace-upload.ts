import { ApiError } from "./errors";

/**
 * Streams a request body into R2 at the length its Content-Length declared, and says whose
 * fault a failed upload is. R2 takes a stream only when its length is known; a body that breaks
 * off (the client went away) or does not match its Content-Length fails the put just as R2
 * being unavailable does. Counting the bytes on their way through is what tells the two apart:
 * the client's mistake is 400, the platform's failure 503 (never blamed on the client).
 */
export async function putAtDeclaredLength(bucket: R2Bucket, key: string, body: ReadableStream<Uint8Array> | null, length: number, options: R2PutOptions): Promise<R2Object | null> {
  const fixed = new FixedLengthStream(length);
  let cut: string | null = null;
  const pumping = pump(body, fixed.writable, length, (reason) => (cut = reason));
  // When R2 fails first, the pump's rejection is only the echo of it.
  pumping.catch(() => {});
  try {
    const object = await bucket.put(key, fixed.readable, options);
    await pumping;
    return object;
  } catch (e) {
    // The pump names the cut before it aborts the stream, so before R2's put fails on it.
    if (cut) throw new ApiError("validation", `The body did not match its Content-Length: ${cut}. Nothing was written.`);
    if (e instanceof ApiError) throw e;
    console.error(JSON.stringify({ level: "error", msg: "workspace put failed", error: e instanceof Error ? e.message : String(e) }));
    throw new ApiError("unavailable", "Storage did not take the file; nothing was written. Try again.", [], { "Retry-After": "1" });
  }
}

async function pump(body: ReadableStream<Uint8Array> | null, into: WritableStream<ArrayBufferView>, length: number, cutOff: (reason: string) => void): Promise<void> {
  const writer = into.getWriter();
  const stop = async (reason: string) => {
    cutOff(reason);
    await writer.abort(new Error(reason)).catch(() => {});
    throw new Error(reason);
  };
  let seen = 0;
  const reader = body?.getReader();
  while (reader) {
    let chunk: ReadableStreamReadResult<Uint8Array>;
    try {
      chunk = await reader.read();
    } catch {
      return stop(`the upload broke off after ${seen} of ${length} bytes`);
    }
    if (chunk.done) break;
    seen += chunk.value.byteLength;
    if (seen > length) {
      await reader.cancel().catch(() => {});
      return stop(`more than the ${length} bytes declared arrived`);
    }
    await writer.write(chunk.value);
  }
  if (seen < length) return stop(`the body ended after ${seen} of ${length} bytes`);
  await writer.close();
}
