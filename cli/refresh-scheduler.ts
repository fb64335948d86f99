/**
 * Runs `refresh` when asked (`poke`: trailing, at most once per `debounceMs`, so a burst of
 * events costs one refresh; `now`: at once) and otherwise every `idleMs`; never two at once.
 * A poke while a refresh runs makes another follow it. A failed refresh (false) is tried
 * again after `retryMs` rather than `idleMs`.
 */
export class RefreshScheduler {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private dueAt = Infinity;
  private running = false;
  private again = false;
  private closed = false;

  constructor(
    private readonly refresh: () => Promise<boolean>,
    private readonly debounceMs: number,
    /** How long without a poke before refreshing anyway; changed when a watch falls back to polling. */
    public idleMs: number,
    private readonly retryMs: number,
  ) {}

  /** Something changed: refresh within `debounceMs`. */
  poke(delayMs = this.debounceMs): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer && this.dueAt <= Date.now() + delayMs) return;
    this.schedule(delayMs);
  }

  now(): void {
    this.poke(0);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(ms: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = Date.now() + ms;
    this.timer = setTimeout(() => void this.run(), ms);
  }

  private async run(): Promise<void> {
    this.timer = null;
    this.running = true;
    let ok = false;
    try {
      ok = await this.refresh();
    } catch {
      // the caller reports its own errors; a throw here only means "try again soon"
    } finally {
      this.running = false;
    }
    if (this.closed) return;
    if (this.again) {
      this.again = false;
      this.schedule(this.debounceMs);
    } else {
      this.schedule(ok ? this.idleMs : Math.min(this.retryMs, this.idleMs));
    }
  }
}
