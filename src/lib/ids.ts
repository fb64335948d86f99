import { z } from "zod";

/**
 * Client-chosen ids (sessions, topics). No `:`, because Durable Object names join ids with
 * it (`{team}:{session}:{topic}`) and one name must never stand for two entities.
 */
export const clientId = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, "1-128 characters: letters, digits, '.', '_' or '-', starting with a letter or digit");
