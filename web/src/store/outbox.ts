// Messages not yet acknowledged, kept in localStorage per user so a reload or an offline
// spell loses nothing; each is resent with its original client_msg_id (the server returns
// the first message on a retry, so it is delivered once).
import type { OutboxEntry } from "./state";

const key = (userId: string) => `gochat.outbox.${userId}`;

export function loadOutbox(userId: string): OutboxEntry[] {
  try {
    const raw = localStorage.getItem(key(userId));
    const entries = raw ? (JSON.parse(raw) as OutboxEntry[]) : [];
    return Array.isArray(entries) ? entries : [];
  } catch {
    return [];
  }
}

export function saveOutbox(userId: string, entries: OutboxEntry[]): void {
  if (entries.length) localStorage.setItem(key(userId), JSON.stringify(entries));
  else localStorage.removeItem(key(userId));
}

export function newClientMsgId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
