/**
 * The seed system's credential rotation: with `AVAILABLE_TOKENS=1,2,3` and
 * `CLAUDE_OAUTH_TOKEN_{i}`, the token changes every two hours (`hour // 2 % n`) over the
 * indices whose variable is set; a missing one is skipped, not used.
 */
export function pickRotatedToken(env: Record<string, string | undefined>, now: Date = new Date()): { index: string; token: string } | null {
  const indices = (env.AVAILABLE_TOKENS ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((i) => i !== "" && (env[`CLAUDE_OAUTH_TOKEN_${i}`] ?? "") !== "");
  if (indices.length === 0) return null;
  const index = indices[Math.floor(now.getHours() / 2) % indices.length] as string;
  return { index, token: env[`CLAUDE_OAUTH_TOKEN_${index}`] as string };
}
