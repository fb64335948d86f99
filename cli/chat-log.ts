import { WORKSPACE_MAX_BYTES } from "../src/domain/workspace-path";
import { callOptions, type SwitchboardClient } from "./client";

/**
 * A step's chat log in the workspace, in parts: `logs/<step>.log`, then `logs/<step>.2.log`,
 * `.3.log` …, each up to `partBytes`. A tick uploads only the parts that changed, so it sends at
 * most the current part (not the whole log again), and a full part leaves memory once stored.
 * The workspace keeps the first part and the latest ones, at most `maxBytes` in all (its limit
 * on one file: a log past it is runaway output, whose start and end are what is read).
 */
export interface ChatLogOptions {
  client: SwitchboardClient;
  sessionId: string;
  topicId: string;
  step: string;
  /** The runner's own notes (an upload that failed, parts removed). */
  note: (text: string) => void;
  partBytes?: number;
  maxBytes?: number;
  /** The run's Ctrl-C: uploads in flight stop at once; after it each gets one short try (`callOptions`). */
  interrupt?: AbortSignal;
}

export const LOG_PART_BYTES = 8 * 1024 * 1024;

/** Full parts held while uploads lag behind the agent; past them the oldest is dropped unstored. */
const MAX_WAITING_PARTS = 2;

interface Part {
  n: number;
  text: string;
  bytes: number;
  /** Bytes of it the workspace holds. */
  stored: number;
  full: boolean;
}

export class ChatLog {
  private readonly partBytes: number;
  private readonly keepParts: number;
  /** In memory: full parts not yet stored, then the current part. */
  private parts: Part[] = [];
  /** Part numbers the workspace holds, oldest first. */
  private stored: number[] = [];
  private inFlight: Promise<void> | null = null;
  private told = false;

  constructor(private readonly o: ChatLogOptions) {
    this.partBytes = o.partBytes ?? LOG_PART_BYTES;
    // A part may pass partBytes by one pipe read (64 KiB, at most 192 KiB of UTF-8): with the
    // defaults, 12 parts of at most 8.2 MiB stay within the 100 MiB.
    this.keepParts = Math.max(2, Math.floor((o.maxBytes ?? WORKSPACE_MAX_BYTES) / this.partBytes));
  }

  /** Each call's options, decided as it starts: whether the run was interrupted by then. */
  private call() {
    return callOptions(this.o.interrupt);
  }

  append(text: string): void {
    const bytes = Buffer.byteLength(text);
    let part = this.parts.at(-1);
    if (!part || (part.bytes > 0 && part.bytes + bytes > this.partBytes)) {
      if (part) part.full = true;
      part = { n: (part?.n ?? 0) + 1, text: "", bytes: 0, stored: 0, full: false };
      this.parts.push(part);
      const waiting = this.parts.filter((p) => p.full);
      if (waiting.length > MAX_WAITING_PARTS) {
        const dropped = waiting[0] as Part;
        this.parts = this.parts.filter((p) => p !== dropped);
        this.o.note(`[switchboard] chat log: ${this.path(dropped.n)} was dropped unstored (the workspace is slower than the agent's output)\n`);
      }
    }
    part.text += text;
    part.bytes += bytes;
  }

  /** Uploads what changed; one sync at a time (each PUT replaces a whole part: a slow one landing after a newer one would leave it stale), so a tick that finds one in flight skips. */
  sync(): Promise<void> {
    this.inFlight ??= this.store().finally(() => (this.inFlight = null));
    return this.inFlight;
  }

  /**
   * After the agent exited: the sync in flight, one with the rest, and what an earlier run of
   * the step left: its parts beyond this one's, and its first part when this run stored none.
   */
  async finish(): Promise<void> {
    await this.inFlight;
    await this.sync();
    if (!this.stored.includes(1)) await this.replaceEarlierFirstPart();
    try {
      const mine = new Set(this.stored.map((n) => this.path(n)));
      const earlier = (await this.o.client.listWorkspace(this.o.sessionId, this.o.topicId, `logs/${this.o.step}.`, this.call())).filter((p) => /\.\d+\.log$/.test(p) && !mine.has(p));
      for (const p of earlier) await this.o.client.deleteWorkspaceFile(this.o.sessionId, this.o.topicId, p, this.call());
    } catch (e) {
      this.o.note(`[switchboard] chat log: could not remove an earlier run's parts: ${message(e)}\n`);
    }
  }

  /**
   * This run stored no first part, so `logs/<step>.log` is still an earlier run's, and would be
   * read as this one's. An agent that printed nothing gets an empty log (which says just that);
   * one whose output could not be stored gets none (the earlier log is removed), not another's.
   */
  private async replaceEarlierFirstPart(): Promise<void> {
    const path = this.path(1);
    const printed = this.stored.length > 0 || this.parts.some((p) => p.bytes > 0);
    try {
      if (printed) {
        await this.o.client.deleteWorkspaceFile(this.o.sessionId, this.o.topicId, path, this.call());
      } else {
        await this.o.client.putWorkspaceFile(this.o.sessionId, this.o.topicId, path, "", undefined, this.call());
        this.stored.unshift(1);
      }
    } catch (e) {
      this.o.note(`[switchboard] chat log: could not ${printed ? "remove" : "empty"} an earlier run's ${path}: ${message(e)}\n`);
    }
  }

  private async store(): Promise<void> {
    for (const part of [...this.parts]) {
      if (part.stored < part.bytes) {
        const { text, bytes } = part;
        try {
          await this.o.client.putWorkspaceFile(this.o.sessionId, this.o.topicId, this.path(part.n), text, undefined, this.call());
        } catch (e) {
          this.o.note(`[switchboard] chat log upload failed: ${message(e)}\n`);
          return; // tried again on the next tick
        }
        part.stored = bytes;
        if (!this.stored.includes(part.n)) this.stored.push(part.n);
      }
      if (part.full && part.stored === part.bytes) this.parts = this.parts.filter((p) => p !== part);
    }
    await this.trim();
  }

  /** Removes the oldest parts after the first while the workspace holds more than keepParts. */
  private async trim(): Promise<void> {
    while (this.stored.length > this.keepParts) {
      const n = this.stored[1] as number;
      try {
        await this.o.client.deleteWorkspaceFile(this.o.sessionId, this.o.topicId, this.path(n), this.call());
      } catch (e) {
        this.o.note(`[switchboard] chat log: could not remove ${this.path(n)}: ${message(e)}\n`);
        return;
      }
      this.stored = this.stored.filter((x) => x !== n);
      if (!this.told) this.o.note(`[switchboard] chat log: past ${this.keepParts} parts, the parts after the first are removed oldest first (from ${this.path(n)})\n`);
      this.told = true;
    }
  }

  private path(n: number): string {
    return n === 1 ? `logs/${this.o.step}.log` : `logs/${this.o.step}.${n}.log`;
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
