// Conversations and profile: start a direct chat, create and manage groups, mute, profile.
import { api, get } from "../api/http";
import { session } from "../api/session";
import { uploadMedia } from "../api/upload";
import type { Conversation, Me, Media, User } from "../api/types";
import { ensureUsers, loadConversation, refreshPresence } from "./client";
import { cursors } from "./cursors";
import { updateTitle } from "./notify";
import { patchConversation, store } from "./state";

function adopt(conv: Conversation): string {
  cursors.atLeast(conv.id, conv.last_pos);
  store.set((s) => ({
    conversations: { ...s.conversations, [conv.id]: { ...s.conversations[conv.id], ...conv, left: false } },
  }));
  void ensureUsers((conv.members ?? []).map((m) => m.user_id)).then(refreshPresence);
  return conv.id;
}

export async function searchUsers(query: string): Promise<User[]> {
  const body = await get<{ users: User[] }>(`/users?q=${encodeURIComponent(query)}&limit=20`);
  store.set((s) => {
    const users = { ...s.users };
    for (const u of body.users) users[u.id] = u;
    return { users };
  });
  return body.users;
}

export async function startDirect(userId: string): Promise<string> {
  return adopt(await api<Conversation>("POST", "/conversations", { kind: "direct", member_ids: [userId] }));
}

export async function createGroup(title: string, memberIds: string[]): Promise<string> {
  return adopt(await api<Conversation>("POST", "/conversations", { kind: "group", title, member_ids: memberIds }));
}

export async function renameGroup(id: string, title: string): Promise<void> {
  adopt(await api<Conversation>("PATCH", `/conversations/${id}`, { title }));
}

export async function addMembers(id: string, userIds: string[]): Promise<void> {
  adopt(await api<Conversation>("POST", `/conversations/${id}/members`, { user_ids: userIds }));
}

export async function removeMember(id: string, userId: string): Promise<void> {
  await api<void>("DELETE", `/conversations/${id}/members/${userId}`);
  if (userId === store.get().me?.id) {
    patchConversation(id, { left: true });
    updateTitle();
  } else {
    await loadConversation(id);
  }
}

export async function setMuted(id: string, muted: boolean): Promise<void> {
  await api<void>("PUT", `/conversations/${id}/mute`, { muted });
  patchConversation(id, { muted });
  updateTitle();
}

export async function updateProfile(changes: { display_name?: string; bio?: string; avatar_media_id?: string }): Promise<void> {
  const me = await api<Me>("PATCH", "/users/me", changes);
  store.set((s) => ({ me, users: { ...s.users, [me.id]: me } }));
}

/** Upload a file (refreshing the token first if it is about to expire). */
export async function upload(file: File, onProgress: (fraction: number) => void): Promise<{ media: Promise<Media>; abort: () => void }> {
  if (session.expiresSoon(60_000)) await session.refresh();
  const started = uploadMedia(file, onProgress);
  return { media: started.promise, abort: started.abort };
}
