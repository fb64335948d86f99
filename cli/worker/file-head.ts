import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { wholeChars } from "../output";

/**
 * The start of a file an agent wrote, at most `maxChars` characters (UTF-16 units, as the
 * API's zod limits count them), with a line saying so when the file is longer. Only what fits
 * is read: an agent may leave a file of any size (600 MB would not even fit in one string,
 * and reading it whole crashed the worker). Throws, like `readFileSync`, when it cannot be
 * read, or when it is not a regular file (opening a FIFO would wait for a writer forever).
 *
 * @example readFileHead("outputs/task_1_result.md", 200_000)
 */
export function readFileHead(path: string, maxChars: number): string {
  // O_NONBLOCK: a FIFO opens at once, and is refused below rather than waited on.
  const fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new Error(`${path} is not a regular file`);
    // A UTF-16 unit is at most 3 bytes of UTF-8 (a 4-byte character is two units).
    const buffer = Buffer.alloc(Math.min(stat.size, maxChars * 3));
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    // A character cut by the byte limit decodes as U+FFFD at the end: never kept (see below).
    const text = buffer.subarray(0, read).toString("utf8");
    if (read === stat.size && text.length <= maxChars) return text;
    const note = `\n\n[… cut at ${maxChars.toLocaleString("en-US")} characters: the file is ${stat.size.toLocaleString("en-US")} bytes]`;
    return `${wholeChars(text.slice(0, Math.max(0, maxChars - note.length)))}${note}`;
  } finally {
    closeSync(fd);
  }
}
