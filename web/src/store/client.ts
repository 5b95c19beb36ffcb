// Session life: sign in/out, bootstrap (profile, conversations, members, presence), the
// realtime connection and its sync. Everything that talks to the server starts here.
import { ApiError, get, publicApi } from "../api/http";
import { session } from "../api/session";
import { Realtime } from "../api/socket";
import type { Conversation, Me, Presence, Tokens, User } from "../api/types";
import { navigate } from "../router";
import { cursors } from "./cursors";
import { applyEvent, resyncConversation } from "./events";
import { flushOutbox, resendReads } from "./messaging";
import { loadOutbox } from "./outbox";
import { initialState, store, type ConvState } from "./state";
import { updateTitle } from "./notify";

export const realtime = new Realtime({
  onEvent: (frame) => applyEvent(frame),
  onReady: () => void afterConnect(),
  onStatus: (status, detail) =>
    store.set((s) => ({ status, statusDetail: detail, everConnected: s.everConnected || status === "online" })),
  onAuthLost: () => sessionEnded(),
});

let syncTimer: number | undefined;

async function afterConnect(): Promise<void> {
  await syncNow();
  resendReads();
  await flushOutbox();
}

/** Ask the server for everything after our cursors; it acks, then replays, then badges. */
export async function syncNow(): Promise<void> {
  window.clearTimeout(syncTimer);
  try {
    const ack = await realtime.request({ type: "sync", cursors: cursors.snapshot() }, 30_000);
    const resync = Array.isArray(ack.resync) ? (ack.resync as string[]) : [];
    for (const id of resync) void resyncConversation(id);
  } catch {
    // Disconnected meanwhile: the next connect syncs again.
  }
}

/** A position gap that does not close by itself means a live event was lost: sync. */
export function scheduleGapSync(): void {
  window.clearTimeout(syncTimer);
  syncTimer = window.setTimeout(() => {
    if (cursors.hasGaps() && realtime.isOnline) void syncNow();
  }, 2_000);
}

export async function register(username: string, password: string, displayName: string): Promise<void> {
  await publicApi<User>("/auth/register", {
    username,
    password,
    display_name: displayName || undefined,
  });
  await login(username, password);
}

export async function login(username: string, password: string): Promise<void> {
  const tokens = await publicApi<Tokens>("/auth/login", { username, password });
  session.adopt(tokens);
  await bootstrap();
}

export async function logout(): Promise<void> {
  const refreshToken = session.current?.refresh_token;
  realtime.stop();
  if (refreshToken) {
    await fetch("/api/v1/auth/logout", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: refreshToken }),
    }).catch(() => undefined);
  }
  signedOut(null);
}

function signedOut(message: string | null): void {
  realtime.stop();
  cursors.clear();
  store.set({ ...initialState, booting: false, toast: message }); // me = null first: see below
  session.clear();
  navigate("/login", true);
}

export function sessionEnded(): void {
  signedOut("Your session has ended. Please sign in again.");
}

// A refresh refused anywhere (REST, socket, timer) clears the session: leave the app then.
session.onChange(() => {
  if (!session.current && store.get().me) sessionEnded();
});

/** After sign-in or a reload with a stored session. */
export async function bootstrap(): Promise<void> {
  if (!session.current) {
    store.set({ booting: false });
    return;
  }
  session.start();
  try {
    const me = await get<Me>("/users/me");
    store.set((s) => ({
      me,
      booting: false,
      users: { ...s.users, [me.id]: me },
      outbox: loadOutbox(me.id),
    }));
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return signedOut(null);
    store.set({ booting: false, listError: "Cannot reach the server." });
    window.setTimeout(() => void bootstrap(), 3_000);
    return;
  }
  await loadConversations();
  realtime.start();
}

export async function loadConversations(): Promise<void> {
  try {
    const all: Conversation[] = [];
    let cursor: string | null = null;
    for (let page = 0; page < 10; page++) {
      const query: string = cursor ? `?limit=100&cursor=${encodeURIComponent(cursor)}` : "?limit=100";
      const body: { conversations: Conversation[]; next_cursor: string | null } = await get(`/conversations${query}`);
      all.push(...body.conversations);
      cursor = body.next_cursor;
      if (!cursor) break;
    }
    for (const conv of all) cursors.atLeast(conv.id, conv.last_pos);
    store.set((s) => {
      const conversations: Record<string, ConvState> = { ...s.conversations };
      for (const conv of all) conversations[conv.id] = { ...conversations[conv.id], ...conv };
      return { conversations, listLoaded: true, listError: null };
    });
    updateTitle();
    void loadDetails(all.map((c) => c.id)); // names and presence fill in; the socket need not wait
  } catch (error) {
    store.set({ listError: error instanceof Error ? error.message : "could not load conversations" });
  }
}

/** Members of each conversation (for names and presence), a few requests at a time. */
async function loadDetails(ids: string[]): Promise<void> {
  const queue = [...ids];
  const worker = async () => {
    for (let id = queue.shift(); id; id = queue.shift()) await loadConversation(id).catch(() => undefined);
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  await refreshPresence();
}

export async function loadConversation(id: string): Promise<ConvState> {
  const conv = await get<Conversation>(`/conversations/${id}`);
  cursors.atLeast(conv.id, conv.last_pos);
  store.set((s) => {
    const receipts = { ...(s.receipts[id] ?? {}) };
    for (const m of conv.members ?? []) {
      if (m.read_seq !== undefined) receipts[m.user_id] = Math.max(receipts[m.user_id] ?? 0, m.read_seq);
    }
    return {
      conversations: { ...s.conversations, [id]: { ...s.conversations[id], ...conv, left: false } },
      receipts: { ...s.receipts, [id]: receipts },
    };
  });
  await ensureUsers((conv.members ?? []).map((m) => m.user_id));
  return store.get().conversations[id];
}

const userRequests = new Map<string, Promise<void>>();

export async function ensureUsers(ids: string[]): Promise<void> {
  const known = store.get().users;
  const wanted = [...new Set(ids)].filter((id) => !known[id]);
  await Promise.all(
    wanted.map((id) => {
      let request = userRequests.get(id);
      if (!request) {
        request = get<User>(`/users/${id}`)
          .then((user) => store.set((s) => ({ users: { ...s.users, [user.id]: user } })))
          .catch(() => undefined)
          .finally(() => userRequests.delete(id));
        userRequests.set(id, request);
      }
      return request;
    }),
  );
}

export async function refreshPresence(): Promise<void> {
  const state = store.get();
  const ids = new Set<string>();
  for (const conv of Object.values(state.conversations)) {
    for (const m of conv.members ?? []) if (m.user_id !== state.me?.id) ids.add(m.user_id);
  }
  const all = [...ids];
  for (let i = 0; i < all.length; i += 100) {
    const chunk = all.slice(i, i + 100);
    try {
      const body = await get<{ presence: Presence[] }>(`/presence?user_ids=${chunk.join(",")}`);
      store.set((s) => {
        const presence = { ...s.presence };
        for (const p of body.presence) presence[p.user_id] = p.status;
        return { presence };
      });
    } catch {
      return;
    }
  }
}

export function showToast(message: string | null): void {
  store.set({ toast: message });
}
