/**
 * First in, first out, where taking the oldest costs O(1) (amortized). `Array#shift` and
 * `splice(0, n)` move every item left: a queue kept at its cap by a chatty agent would cost
 * O(n) per line, and the daemon's heartbeats would starve behind it.
 */
export class LineQueue<T> {
  private items: T[] = [];
  /** The oldest item's index in `items`; the slots before it are spent. */
  private head = 0;
  /** Items copied by compactions so far: the cost of dropping, which stays O(1) per item. */
  moved = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** The i-th oldest (0 is the oldest). */
  at(i: number): T | undefined {
    return i >= 0 && i < this.length ? this.items[this.head + i] : undefined;
  }

  /** Removes and returns the `n` oldest. */
  take(n: number): T[] {
    const taken = this.items.slice(this.head, this.head + Math.max(0, n));
    this.head += taken.length;
    // Copy the live part down once the spent part is most of the array: each item is copied
    // at most once more on average, and the spent slots stop holding their lines.
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.moved += this.items.length - this.head;
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return taken;
  }
}
