import { InvalidArgumentError } from "commander";
import { type Context, readAll } from "./context";
import { UsageError } from "./errors";

/** A commander value parser for a whole number from 1 to `max`. */
export function positiveInt(max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isInteger(n) || n < 1 || n > max) throw new InvalidArgumentError(`expected a whole number from 1 to ${max}`);
    return n;
  };
}

/** A commander value parser for a number of seconds from `min` to `max` (fractions allowed: `0.5`). */
export function secondsOption(min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected a number of seconds from ${min} to ${max}`);
    return n;
  };
}

/** A repeatable option: `--depends-on a --depends-on b` → ["a", "b"]. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The text itself, or all of stdin for `-` (keeps keys and long texts out of the shell history). */
export async function textOrStdin(ctx: Context, value: string, what: string): Promise<string> {
  if (value !== "-") return value;
  if ("isTTY" in ctx.stdin && ctx.stdin.isTTY) ctx.err(`reading ${what} from stdin; end it with Ctrl-D\n`);
  const text = await readAll(ctx.stdin);
  if (text.trim() === "") throw new UsageError(`${what} from stdin was empty`);
  return text;
}
