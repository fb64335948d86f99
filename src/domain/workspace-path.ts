/**
 * Validates a workspace file path (the part after `…/workspace/`): relative, no `..` or `.`
 * segments, no empty segments, no control characters, at most 1,024 bytes (R2's key limit
 * leaves room for the team, session and topic prefix).
 */
export function workspacePathProblem(path: string): string | null {
  if (path.length === 0) return "the path is empty";
  if (new TextEncoder().encode(path).byteLength > 1024) return "the path is over 1,024 bytes";
  if (path.startsWith("/")) return "the path must not start with /";
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\u0000-\u001f\u007f]/.test(path)) return "the path contains control characters";
  for (const segment of path.split("/")) {
    if (segment === "..") return "the path must not contain ..";
    if (segment === "." || segment === "") return "the path must not contain empty or . segments";
  }
  return null;
}

/** The R2 key of a workspace file: the team first, since session ids are unique only per team. */
export function workspaceKey(teamId: string, sessionId: string, topicId: string, path = ""): string {
  return `workspace/${teamId}/${sessionId}/${topicId}/${path}`;
}

/** Largest file the workspace takes. */
export const WORKSPACE_MAX_BYTES = 100 * 1024 * 1024;
