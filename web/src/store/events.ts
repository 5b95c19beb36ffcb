// Server events applied to the state. Every handler is idempotent: sync replays what may
// already have arrived live, and a conversation's events may arrive out of order.
import { get } from "../api/http";
import type { Badge, Conversation, Message, Reaction, ServerFrame } from "../api/types";
import { navigate } from "../router";
import { session } from "../api/session";
import { ensureUsers, loadConversation, refreshPresence, scheduleGapSync, sessionEnded } from "./client";
import { cursors } from "./cursors";
import { markReadIfViewing, removeFromOutbox } from "./messaging";
import { notifyMessage, updateTitle } from "./notify";
import { mergeMessages, patchConversation, patchHistory, store, type ConvState } from "./state";

export function applyEvent(frame: ServerFrame): void {
  switch (frame.type) {
    case "message.created":
    case "message.updated":
    case "message.deleted":
      if (frame.message) onMessage(frame.message, frame.type === "message.created");
      break;
    case "reaction.changed":
      onReactions(frame.conversation_id, frame.seq, frame.reactions);
      break;
    case "member.joined":
    case "member.updated":
      onMemberJoined(frame.conversation_id, frame.user_id, frame.role ?? "member");
      break;
    case "session.revoked":
      if (frame.session_id === session.current?.session_id) sessionEnded();
      break;
    case "member.left":
      onMemberLeft(frame.conversation_id, frame.user_id);
      break;
    case "conversation.created":
      onConversation(frame.conversation);
      break;
    case "conversation.updated":
      patchConversation(frame.conversation_id, { title: frame.title });
      break;
    case "conversation.muted":
      patchConversation(frame.conversation_id, { muted: frame.muted });
      updateTitle();
      break;
    case "receipt.read":
      onReceipt(frame.conversation_id, frame.user_id, frame.seq);
      break;
    case "conversation.read":
      onOwnRead(frame.conversation_id, frame.seq);
      break;
    case "typing":
      onTyping(frame.conversation_id, frame.user_id, frame.expires_in_s ?? 5);
      break;
    case "presence":
      store.set((s) => ({ presence: { ...s.presence, [frame.user_id]: frame.status } }));
      break;
    case "notification":
      onBadges(frame.conversations);
      break;
    case "resync_required":
      void resyncConversation(frame.conversation_id, frame.last_pos);
      break;
    default:
      return;
  }
  if ("pos" in frame && typeof frame.pos === "number" && "conversation_id" in frame) {
    cursors.applied(frame.conversation_id, frame.pos);
    if (cursors.hasGaps()) scheduleGapSync();
  }
}

function onMessage(message: Message, created: boolean): void {
  const state = store.get();
  const conv = state.conversations[message.conversation_id];
  if (!conv) {
    void loadConversation(message.conversation_id).catch(() => undefined);
    return;
  }
  const mine = message.sender_id === state.me?.id;
  if (mine) removeFromOutbox(message.client_msg_id);
  const isNew = created && message.seq > conv.last_seq;
  if (state.histories[conv.id]) {
    patchHistory(conv.id, (h) => ({ items: mergeMessages(h.items, [message]) }));
  }
  patchConversation(conv.id, (c) => lastMessagePatch(c, message, isNew && !mine, state.me?.id));
  if (created) clearTyping(conv.id, message.sender_id);
  void ensureUsers([message.sender_id]);
  if (isNew && !mine) {
    markReadIfViewing(conv.id);
    notifyMessage(message, (id) => navigate(`/c/${id}`));
  }
  updateTitle();
}

function lastMessagePatch(c: ConvState, message: Message, countUnread: boolean, me?: string): Partial<ConvState> {
  const patch: Partial<ConvState> = {};
  if (message.seq >= c.last_seq) {
    patch.last_seq = message.seq;
    patch.last_message = message;
  } else if (c.last_message?.seq === message.seq) {
    patch.last_message = message;
  }
  if (countUnread && message.seq > c.read_seq) {
    patch.unread_count = c.unread_count + 1;
    if (me && message.mentions?.includes(me)) patch.mention_count = (c.mention_count ?? 0) + 1;
  }
  return patch;
}

function onReactions(conversationId: string, seq: number, reactions: Reaction[]): void {
  patchHistory(conversationId, (h) => ({
    items: h.items.map((m) => (m.seq === seq ? { ...m, reactions } : m)),
  }));
}

function onMemberJoined(conversationId: string, userId: string, role: string): void {
  patchConversation(conversationId, (c) => {
    const members = (c.members ?? []).filter((m) => m.user_id !== userId);
    return { members: [...members, { user_id: userId, role: role as "member" }] };
  });
  void ensureUsers([userId]);
}

function onMemberLeft(conversationId: string, userId: string): void {
  const me = store.get().me?.id;
  patchConversation(conversationId, (c) => ({
    members: (c.members ?? []).filter((m) => m.user_id !== userId),
    ...(userId === me ? { left: true } : {}),
  }));
}

function onConversation(conv: Conversation): void {
  cursors.atLeast(conv.id, conv.last_pos);
  store.set((s) => {
    const existing = s.conversations[conv.id];
    // The event's counters are a stranger's view (zeros): keep what this user already knows.
    const merged: ConvState = existing
      ? { ...existing, ...conv, read_seq: existing.read_seq, unread_count: existing.unread_count,
          mention_count: existing.mention_count, muted: existing.muted,
          last_message: existing.last_message ?? conv.last_message, left: false }
      : { ...conv, unread_count: conv.unread_count ?? 0, read_seq: conv.read_seq ?? 0, left: false };
    return { conversations: { ...s.conversations, [conv.id]: merged } };
  });
  void ensureUsers((conv.members ?? []).map((m) => m.user_id)).then(refreshPresence);
  if ((store.get().conversations[conv.id]?.last_seq ?? 0) > 0 && !store.get().conversations[conv.id]?.last_message) {
    void loadConversation(conv.id).catch(() => undefined);
  }
}

function onReceipt(conversationId: string, userId: string, seq: number): void {
  store.set((s) => {
    const current = s.receipts[conversationId] ?? {};
    if ((current[userId] ?? 0) >= seq) return {};
    return { receipts: { ...s.receipts, [conversationId]: { ...current, [userId]: seq } } };
  });
}

function onOwnRead(conversationId: string, seq: number): void {
  patchConversation(conversationId, (c) => {
    if (seq <= c.read_seq) return {};
    const caughtUp = seq >= c.last_seq;
    return {
      read_seq: seq,
      unread_count: caughtUp ? 0 : c.unread_count,
      mention_count: caughtUp ? 0 : c.mention_count,
    };
  });
  updateTitle();
}

const typingTimers = new Map<string, number>();

function onTyping(conversationId: string, userId: string, expiresInS: number): void {
  const until = Date.now() + expiresInS * 1000;
  store.set((s) => ({
    typing: { ...s.typing, [conversationId]: { ...(s.typing[conversationId] ?? {}), [userId]: until } },
  }));
  const key = `${conversationId}:${userId}`;
  window.clearTimeout(typingTimers.get(key));
  typingTimers.set(key, window.setTimeout(() => clearTyping(conversationId, userId), expiresInS * 1000));
}

function clearTyping(conversationId: string, userId: string): void {
  const current = store.get().typing[conversationId];
  if (!current || !(userId in current)) return;
  const rest = { ...current };
  delete rest[userId];
  store.set((s) => ({ typing: { ...s.typing, [conversationId]: rest } }));
}

function onBadges(badges: Badge[]): void {
  store.set((s) => {
    const conversations = { ...s.conversations };
    for (const b of badges) {
      const conv = conversations[b.conversation_id];
      if (conv) {
        conversations[b.conversation_id] = {
          ...conv,
          unread_count: b.unread_count,
          mention_count: b.mention_count,
          muted: b.muted,
        };
      }
    }
    return { conversations };
  });
  for (const id of Object.keys(store.get().conversations)) markReadIfViewing(id);
  updateTitle();
}

/** Too much was missed to replay: reload the conversation and its latest messages. */
export async function resyncConversation(conversationId: string, lastPos?: number): Promise<void> {
  try {
    const conv = await loadConversation(conversationId);
    cursors.reset(conversationId, Math.max(lastPos ?? 0, conv.last_pos));
    if (store.get().histories[conversationId]?.loaded) await loadLatest(conversationId, true);
  } catch {
    // Not a member any more, or offline: the next sync tries again.
  }
}

export const PAGE = 50;

export async function loadLatest(conversationId: string, replace = false): Promise<void> {
  const conv = store.get().conversations[conversationId];
  if (!conv) return;
  try {
    const query = conv.last_seq > 0 ? `?before_seq=${conv.last_seq + 1}&limit=${PAGE}` : `?limit=${PAGE}`;
    const body = await get<{ messages: Message[] }>(`/conversations/${conversationId}/messages${query}`);
    patchHistory(conversationId, (h) => ({
      items: replace ? body.messages : mergeMessages(h.items, body.messages),
      loaded: true,
      hasMore: body.messages.length >= PAGE && (body.messages[0]?.seq ?? 1) > 1,
      error: undefined,
    }));
    await ensureUsers(body.messages.map((m) => m.sender_id));
  } catch (error) {
    patchHistory(conversationId, () => ({ error: error instanceof Error ? error.message : "could not load" }));
  }
}
