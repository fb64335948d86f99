/**
 * Cuts text that arrives in chunks (an agent's output, as a pipe hands it over) into lines.
 * Only each new chunk is searched for line ends: searching the whole unfinished line again on
 * every chunk is quadratic in its length. Of a line longer than `maxChars` only the first
 * `maxChars` are kept, and it is passed on as cut, so memory stays bounded however long a line
 * the agent writes without a newline.
 *
 * @example
 * const lines = new LineCutter(64 * 1024, (line, cut) => cut || handle(line));
 * child.stdout.on("data", (text: string) => lines.push(text));
 * child.on("close", () => lines.end());
 */
export class LineCutter {
  private partial = "";
  private cut = false;
  constructor(
    private readonly maxChars: number,
    private readonly onLine: (line: string, cut: boolean) => void,
  ) {}

  push(text: string): void {
    let start = 0;
    for (let end = text.indexOf("\n"); end >= 0; end = text.indexOf("\n", start)) {
      this.keep(text, start, end);
      this.endLine();
      start = end + 1;
    }
    this.keep(text, start, text.length);
  }

  /** The output ended: a last line without a newline still counts. */
  end(): void {
    if (this.partial || this.cut) this.endLine();
  }

  private keep(text: string, start: number, end: number): void {
    if (this.cut) return;
    const room = this.maxChars - this.partial.length;
    if (end - start > room) {
      this.partial += text.slice(start, start + room);
      this.cut = true;
    } else this.partial += text.slice(start, end);
  }

  private endLine(): void {
    const line = this.partial;
    const cut = this.cut;
    this.partial = "";
    this.cut = false;
    this.onLine(line, cut);
  }
}
