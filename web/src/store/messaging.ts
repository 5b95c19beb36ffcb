// Sending (local echo, outbox, retries with the same client_msg_id), history paging,
// read positions, typing, edits, deletes and reactions.
import { api, ApiError, get } from "../api/http";
import { RequestFailed } from "../api/socket";
import type { Media, Message, Reaction } from "../api/types";
import { ensureUsers, realtime } from "./client";
import { loadLatest, PAGE } from "./events";
import { newClientMsgId, saveOutbox } from "./outbox";
import { updateTitle } from "./notify";
import { mergeMessages, patchConversation, patchHistory, store, type OutboxEntry } from "./state";

// Worth another try later (the connection or the server had a moment); anything else is final.
const RETRYABLE = new Set(["offline", "timeout", "internal_error", "rate_limited", "network", "unavailable"]);

function setOutbox(update: (entries: OutboxEntry[]) => OutboxEntry[]): void {
  const me = store.get().me?.id;
  store.set((s) => ({ outbox: update(s.outbox) }));
  if (me) saveOutbox(me, store.get().outbox);
}

export function removeFromOutbox(clientMsgId: string): void {
  if (store.get().outbox.some((e) => e.client_msg_id === clientMsgId)) {
    setOutbox((entries) => entries.filter((e) => e.client_msg_id !== clientMsgId));
  }
}

export function sendMessage(conversationId: string, body: string, replyTo: number | null, media: Media[] = []): void {
  const text = body.trim() ? body : null;
  if (!text && !media.length) return;
  const entry: OutboxEntry = {
    client_msg_id: newClientMsgId(),
    conversation_id: conversationId,
    body: text,
    media,
    reply_to_seq: replyTo,
    created_at: new Date().toISOString(),
    status: "pending",
  };
  setOutbox((entries) => [...entries, entry]);
  if (realtime.isOnline) void deliver(entry);
}

export function retrySend(clientMsgId: string): void {
  const entry = store.get().outbox.find((e) => e.client_msg_id === clientMsgId);
  if (!entry) return;
  markEntry(clientMsgId, { status: "pending", error: undefined, retryable: false });
  if (realtime.isOnline) void deliver({ ...entry, status: "pending" });
}

export function discardSend(clientMsgId: string): void {
  removeFromOutbox(clientMsgId);
}

/** After every (re)connect: resend what is still waiting, oldest first, same ids. */
export async function flushOutbox(): Promise<void> {
  for (const entry of store.get().outbox) {
    if (!realtime.isOnline) return;
    if (entry.status === "pending" || entry.retryable) {
      if (entry.status !== "pending") markEntry(entry.client_msg_id, { status: "pending", error: undefined, retryable: false });
      await deliver(entry);
    }
  }
}

const delivering = new Set<string>();

async function deliver(entry: OutboxEntry): Promise<void> {
  if (delivering.has(entry.client_msg_id)) return;
  delivering.add(entry.client_msg_id);
  try {
    const frame: Record<string, unknown> = {
      type: "message.send",
      conversation_id: entry.conversation_id,
      client_msg_id: entry.client_msg_id,
    };
    if (entry.body !== null) frame.body = entry.body;
    if (entry.media.length) frame.media_ids = entry.media.map((m) => m.id);
    if (entry.reply_to_seq !== null) frame.reply_to_seq = entry.reply_to_seq;
    const ack = await realtime.request(frame);
    acknowledged(ack.message as Message);
  } catch (error) {
    const code = error instanceof RequestFailed ? error.code : "offline";
    if (!RETRYABLE.has(code)) {
      markEntry(entry.client_msg_id, { status: "failed", error: (error as Error).message });
    } else if (code === "timeout") {
      markEntry(entry.client_msg_id, { status: "failed", error: "no answer yet; will retry", retryable: true });
    }
  } finally {
    delivering.delete(entry.client_msg_id);
  }
}

function acknowledged(message: Message): void {
  removeFromOutbox(message.client_msg_id);
  const conv = store.get().conversations[message.conversation_id];
  if (store.get().histories[message.conversation_id]) {
    patchHistory(message.conversation_id, (h) => ({ items: mergeMessages(h.items, [message]) }));
  }
  if (conv && message.seq >= conv.last_seq) {
    patchConversation(conv.id, { last_seq: message.seq, last_message: message });
  }
}

function markEntry(clientMsgId: string, patch: Partial<OutboxEntry>): void {
  setOutbox((entries) => entries.map((e) => (e.client_msg_id === clientMsgId ? { ...e, ...patch } : e)));
}

// --- history ----------------------------------------------------------------------------

export async function openConversation(conversationId: string): Promise<void> {
  store.set({ activeId: conversationId });
  const history = store.get().histories[conversationId];
  if (!history?.loaded) {
    patchHistory(conversationId, () => ({}));
    await loadLatest(conversationId);
  }
  markReadIfViewing(conversationId);
}

export function closeConversation(): void {
  store.set({ activeId: null });
}

export async function loadOlder(conversationId: string): Promise<void> {
  const history = store.get().histories[conversationId];
  if (!history || history.loadingOlder || !history.hasMore || !history.items.length) return;
  patchHistory(conversationId, () => ({ loadingOlder: true }));
  const before = history.items[0].seq;
  try {
    const body = await get<{ messages: Message[] }>(
      `/conversations/${conversationId}/messages?before_seq=${before}&limit=${PAGE}`,
    );
    patchHistory(conversationId, (h) => ({
      items: mergeMessages(h.items, body.messages),
      hasMore: body.messages.length >= PAGE && (body.messages[0]?.seq ?? 1) > 1,
      loadingOlder: false,
    }));
    await ensureUsers(body.messages.map((m) => m.sender_id));
  } catch {
    patchHistory(conversationId, () => ({ loadingOlder: false }));
  }
}

// --- reading ----------------------------------------------------------------------------

const readSent = new Map<string, number>();

/** Mark read only what the user can see: the open conversation in a visible tab. */
export function markReadIfViewing(conversationId: string): void {
  const state = store.get();
  const conv = state.conversations[conversationId];
  if (!conv || conv.left || state.activeId !== conversationId || document.hidden) return;
  if (conv.last_seq <= conv.read_seq && conv.unread_count === 0) return;
  const seq = conv.last_seq;
  patchConversation(conversationId, { read_seq: Math.max(conv.read_seq, seq), unread_count: 0, mention_count: 0 });
  updateTitle();
  if (seq < 1 || (readSent.get(conversationId) ?? 0) >= seq) return;
  scheduleRead(conversationId);
}

// At most one `read` per conversation per second (a busy group must not trip the server's
// frame rate limit); the last position always goes out.
const READ_INTERVAL_MS = 1_000;
const readTimers = new Map<string, number>();
const readAt = new Map<string, number>();

function scheduleRead(conversationId: string): void {
  if (readTimers.has(conversationId)) return;
  const wait = Math.max(0, (readAt.get(conversationId) ?? 0) + READ_INTERVAL_MS - Date.now());
  readTimers.set(
    conversationId,
    window.setTimeout(() => {
      readTimers.delete(conversationId);
      const seq = store.get().conversations[conversationId]?.read_seq ?? 0;
      if (!realtime.isOnline || seq < 1 || (readSent.get(conversationId) ?? 0) >= seq) return;
      readAt.set(conversationId, Date.now());
      readSent.set(conversationId, seq);
      realtime.request({ type: "read", conversation_id: conversationId, seq }).catch(() => readSent.delete(conversationId));
    }, wait),
  );
}

/** After reconnecting, positions marked read while offline still need sending. */
export function resendReads(): void {
  readSent.clear();
  const active = store.get().activeId;
  if (!active) return;
  markReadIfViewing(active);
  scheduleRead(active); // a position marked locally while offline still has to reach the server
}

// --- typing -----------------------------------------------------------------------------

const typingSentAt = new Map<string, number>();

export function sendTyping(conversationId: string): void {
  const now = Date.now();
  if (now - (typingSentAt.get(conversationId) ?? 0) < 3_000) return;
  typingSentAt.set(conversationId, now);
  realtime.notify({ type: "typing", conversation_id: conversationId });
}

// --- edits, deletes, reactions -------------------------------------------------------------

function replace(message: Message): void {
  patchHistory(message.conversation_id, (h) => ({ items: mergeMessages(h.items, [message]) }));
  patchConversation(message.conversation_id, (c) =>
    c.last_message?.seq === message.seq ? { last_message: message } : {},
  );
}

async function command(frame: Record<string, unknown>, rest: () => Promise<unknown>): Promise<Record<string, unknown>> {
  if (realtime.isOnline) return realtime.request(frame);
  return { rest: await rest() };
}

export async function editMessage(message: Message, body: string): Promise<void> {
  const path = `/conversations/${message.conversation_id}/messages/${message.seq}`;
  const result = await command(
    { type: "message.edit", conversation_id: message.conversation_id, seq: message.seq, body },
    () => api<Message>("PATCH", path, { body }),
  );
  replace((result.message ?? result.rest) as Message);
}

export async function deleteMessage(message: Message): Promise<void> {
  const path = `/conversations/${message.conversation_id}/messages/${message.seq}`;
  const result = await command(
    { type: "message.delete", conversation_id: message.conversation_id, seq: message.seq },
    () => api<Message>("DELETE", path),
  );
  replace((result.message ?? result.rest) as Message);
}

export async function toggleReaction(message: Message, emoji: string): Promise<void> {
  const me = store.get().me?.id ?? "";
  const mine = message.reactions?.find((r) => r.emoji === emoji)?.user_ids.includes(me) ?? false;
  const path = `/conversations/${message.conversation_id}/messages/${message.seq}/reactions/${encodeURIComponent(emoji)}`;
  const result = await command(
    {
      type: mine ? "reaction.remove" : "reaction.add",
      conversation_id: message.conversation_id,
      seq: message.seq,
      emoji,
    },
    () => api<{ reactions: Reaction[] }>(mine ? "DELETE" : "PUT", path),
  );
  const reactions = (result.reactions ?? (result.rest as { reactions: Reaction[] }).reactions) as Reaction[];
  patchHistory(message.conversation_id, (h) => ({
    items: h.items.map((m) => (m.seq === message.seq ? { ...m, reactions } : m)),
  }));
}

export function describeError(error: unknown): string {
  if (error instanceof ApiError || error instanceof RequestFailed) return error.message;
  return error instanceof Error ? error.message : "something went wrong";
}
