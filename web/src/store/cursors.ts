// Per-conversation sync cursors: the highest position applied with no gap below it.
// Events may arrive out of order (two writers publish after their commits); positions seen
// above a gap wait in `ahead` until the gap fills. A gap that stays open triggers a sync,
// which replays from the cursor (events are applied idempotently).

export class Cursors {
  private cursor = new Map<string, number>();
  private ahead = new Map<string, Set<number>>();

  /** Start (or move forward) from a known position, e.g. a conversation's last_pos. */
  atLeast(conversationId: string, pos: number): void {
    const current = this.cursor.get(conversationId) ?? 0;
    if (pos <= current) return;
    this.cursor.set(conversationId, pos);
    this.drain(conversationId);
  }

  /** Record that the event at `pos` was applied. */
  applied(conversationId: string, pos: number): void {
    const current = this.cursor.get(conversationId);
    if (current === undefined) {
      this.cursor.set(conversationId, pos);
      return;
    }
    if (pos <= current) return;
    if (pos === current + 1) {
      this.cursor.set(conversationId, pos);
      this.drain(conversationId);
      return;
    }
    let waiting = this.ahead.get(conversationId);
    if (!waiting) this.ahead.set(conversationId, (waiting = new Set()));
    waiting.add(pos);
  }

  hasGaps(): boolean {
    for (const waiting of this.ahead.values()) if (waiting.size) return true;
    return false;
  }

  /** Reset after a resync: everything up to `pos` is now in hand. */
  reset(conversationId: string, pos: number): void {
    this.cursor.set(conversationId, pos);
    this.drain(conversationId);
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.cursor);
  }

  clear(): void {
    this.cursor.clear();
    this.ahead.clear();
  }

  private drain(conversationId: string): void {
    const waiting = this.ahead.get(conversationId);
    if (!waiting) return;
    let current = this.cursor.get(conversationId) ?? 0;
    for (const pos of [...waiting]) if (pos <= current) waiting.delete(pos);
    while (waiting.delete(current + 1)) current += 1;
    this.cursor.set(conversationId, current);
  }
}

export const cursors = new Cursors();
