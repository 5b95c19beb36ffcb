// Desktop notifications (Notification API) and the "(N) GoChat" title while the tab is hidden.
import { conversationName, displayName, store } from "./state";
import type { Message } from "../api/types";

const BASE_TITLE = "GoChat";

export function notificationsSupported(): boolean {
  return typeof window !== "undefined" && "Notification" in window;
}

export async function askNotificationPermission(): Promise<NotificationPermission | "unsupported"> {
  if (!notificationsSupported()) return "unsupported";
  if (Notification.permission !== "default") return Notification.permission;
  return Notification.requestPermission();
}

export function totalUnread(): number {
  let total = 0;
  for (const conv of Object.values(store.get().conversations)) {
    if (!conv.muted && !conv.left) total += conv.unread_count;
  }
  return total;
}

export function updateTitle(): void {
  const unread = totalUnread();
  const wanted = document.hidden && unread > 0 ? `(${unread}) ${BASE_TITLE}` : BASE_TITLE;
  if (document.title !== wanted) document.title = wanted;
}

/** Tell the user about a message from someone else, unless muted or already in view. */
export function notifyMessage(message: Message, open: (conversationId: string) => void): void {
  const state = store.get();
  const conv = state.conversations[message.conversation_id];
  if (!conv || conv.muted) return;
  const inView = !document.hidden && state.activeId === message.conversation_id;
  if (inView || !notificationsSupported() || Notification.permission !== "granted") return;
  const sender = displayName(state, message.sender_id);
  const where = conv.kind === "group" ? `${sender} in ${conversationName(conv, state)}` : sender;
  const text = message.deleted ? "" : message.body || (message.media.length ? "Sent an attachment" : "");
  try {
    const note = new Notification(where, { body: text.slice(0, 200), tag: `gochat-${conv.id}` });
    note.onclick = () => {
      window.focus();
      open(conv.id);
      note.close();
    };
  } catch {
    // Some platforms only allow notifications from a service worker; the title badge remains.
  }
}
