/**
 * R2 refuses a key over 1,024 bytes of UTF-8 ("The specified object name is not valid",
 * 10020). A workspace file's key is `workspace/{team}/{session}/{topic}/` + its path, so the
 * path only gets what that prefix leaves: `R2_KEY_MAX_BYTES - workspacePrefixBytes(...)`.
 * We check that budget ourselves, per topic, so a long path is a 400 naming the real limit
 * instead of an R2 error surfacing as a 500. (The "over 1,024 bytes is 400" still
 * holds: the budget is always below 1,024, never above it.)
 */
export const R2_KEY_MAX_BYTES = 1024;

const utf8Bytes = (s: string) => new TextEncoder().encode(s).byteLength;

/** The R2 key of a workspace file: the team first, since session ids are unique only per team. */
export function workspaceKey(teamId: string, sessionId: string, topicId: string, path = ""): string {
  return `workspace/${teamId}/${sessionId}/${topicId}/${path}`;
}

/** The most bytes a path (or list prefix) may have in this topic: what the key prefix leaves of R2's 1,024. */
export function workspacePathMaxBytes(teamId: string, sessionId: string, topicId: string): number {
  return R2_KEY_MAX_BYTES - utf8Bytes(workspaceKey(teamId, sessionId, topicId));
}

/** Why `text` (a path or a list prefix) is too long for a key under this topic, or null. */
export function workspaceLengthProblem(text: string, maxBytes: number): string | null {
  const n = utf8Bytes(text);
  if (n <= maxBytes) return null;
  return `${n.toLocaleString("en-US")} bytes, over the ${maxBytes.toLocaleString("en-US")} bytes this topic allows (R2 keys are at most ${R2_KEY_MAX_BYTES.toLocaleString("en-US")} bytes, and the topic's prefix takes the rest)`;
}

/**
 * Validates a workspace file path (the part after `…/workspace/`): relative, no `..` or `.`
 * segments, no empty segments, no control characters (C0, DEL, C1), and no longer than `maxBytes`
 * (the topic's share of the R2 key, see workspacePathMaxBytes; R2's whole 1,024 when no
 * topic is known).
 */
export function workspacePathProblem(path: string, maxBytes = R2_KEY_MAX_BYTES): string | null {
  if (path.length === 0) return "the path is empty";
  const tooLong = workspaceLengthProblem(path, maxBytes);
  if (tooLong) return `the path is ${tooLong}`;
  if (path.startsWith("/")) return "the path must not start with /";
  // Control characters: C0, DEL and C1 (U+0080–U+009F, e.g. U+0085 NEXT LINE, a line break
  // to some tools). Unicode's "Cc" category is exactly these 65; a file name has no use for
  // any of them, and they would break log lines and listings that print the path.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f-\u009f]/.test(path)) return "the path contains control characters";
  for (const segment of path.split("/")) {
    if (segment === "..") return "the path must not contain ..";
    if (segment === "." || segment === "") return "the path must not contain empty or . segments";
  }
  return null;
}

/** Largest file the workspace takes. */
export const WORKSPACE_MAX_BYTES = 100 * 1024 * 1024;
