// The client's state: one immutable snapshot, replaced on every change, read by React
// through useSyncExternalStore. Actions and event handlers live in other modules.
import { useSyncExternalStore } from "react";
import type { ConnectionStatus } from "../api/socket";
import type { Conversation, Me, Media, Message, User } from "../api/types";

export interface ConvState extends Conversation {
  /** Set when I left or was removed: history stays readable, sending is off. */
  left?: boolean;
}

export interface History {
  items: Message[]; // ascending by seq
  loaded: boolean;
  hasMore: boolean;
  loadingOlder: boolean;
  error?: string;
}

export interface OutboxEntry {
  client_msg_id: string;
  conversation_id: string;
  body: string | null;
  media: Media[];
  reply_to_seq: number | null;
  created_at: string;
  status: "pending" | "failed";
  error?: string;
  /** Failed for a reason that may heal (no answer in time): resent after the next connect. */
  retryable?: boolean;
}

export interface State {
  me: Me | null;
  booting: boolean;
  status: ConnectionStatus;
  statusDetail: string;
  everConnected: boolean;
  conversations: Record<string, ConvState>;
  listLoaded: boolean;
  listError: string | null;
  histories: Record<string, History>;
  outbox: OutboxEntry[];
  users: Record<string, User>;
  presence: Record<string, "online" | "offline">;
  typing: Record<string, Record<string, number>>; // conversation -> user -> expires at (ms)
  receipts: Record<string, Record<string, number>>; // conversation -> user -> read seq
  activeId: string | null;
  toast: string | null;
}

export const initialState: State = {
  me: null,
  booting: true,
  status: "connecting",
  statusDetail: "",
  everConnected: false,
  conversations: {},
  listLoaded: false,
  listError: null,
  histories: {},
  outbox: [],
  users: {},
  presence: {},
  typing: {},
  receipts: {},
  activeId: null,
  toast: null,
};

type Listener = () => void;

class Store {
  private state: State = initialState;
  private listeners = new Set<Listener>();

  get = (): State => this.state;

  set(update: Partial<State> | ((state: State) => Partial<State>)): void {
    const patch = typeof update === "function" ? update(this.state) : update;
    this.state = { ...this.state, ...patch };
    for (const listener of this.listeners) listener();
  }

  subscribe = (listener: Listener): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };
}

export const store = new Store();

export function useStore<T>(select: (state: State) => T): T {
  return useSyncExternalStore(store.subscribe, () => select(store.get()));
}

/** Patch one conversation (no-op if unknown). */
export function patchConversation(id: string, patch: Partial<ConvState> | ((c: ConvState) => Partial<ConvState>)): void {
  store.set((s) => {
    const current = s.conversations[id];
    if (!current) return {};
    const change = typeof patch === "function" ? patch(current) : patch;
    return { conversations: { ...s.conversations, [id]: { ...current, ...change } } };
  });
}

export function patchHistory(id: string, patch: (h: History) => Partial<History>): void {
  store.set((s) => {
    const current = s.histories[id] ?? { items: [], loaded: false, hasMore: true, loadingOlder: false };
    return { histories: { ...s.histories, [id]: { ...current, ...patch(current) } } };
  });
}

/** Insert or replace messages by seq, keeping ascending order. */
export function mergeMessages(items: Message[], incoming: Message[]): Message[] {
  const bySeq = new Map(items.map((m) => [m.seq, m]));
  for (const message of incoming) bySeq.set(message.seq, message);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

export function conversationName(conv: ConvState, state: State): string {
  if (conv.kind === "group") return conv.title || "Untitled group";
  const other = otherMember(conv, state);
  if (!other) return "Direct chat";
  const user = state.users[other];
  return user ? user.display_name || user.username : "…";
}

export function otherMember(conv: ConvState, state: State): string | null {
  const me = state.me?.id;
  return conv.members?.find((m) => m.user_id !== me)?.user_id ?? null;
}

export function displayName(state: State, userId: string): string {
  const user = state.users[userId];
  if (!user) return "…";
  return user.display_name || user.username;
}

export function lastActivity(conv: ConvState): string {
  return conv.last_message?.created_at ?? conv.created_at;
}
