import { useLayoutEffect, useRef } from "react";
import { loadOlder } from "../store/messaging";
import { otherMember, useStore, type ConvState } from "../store/state";
import { MessageItem, PendingItem, type MessageActions } from "./MessageItem";

export function MessageList({ conv, actions }: { conv: ConvState; actions: MessageActions }) {
  const state = useStore((s) => s);
  const history = state.histories[conv.id];
  const pending = state.outbox.filter((e) => e.conversation_id === conv.id);
  const me = state.me?.id ?? "";
  const box = useRef<HTMLDivElement>(null);
  const stick = useRef(true);
  const sent = useRef(0);
  const anchor = useRef<{ first: number; fromBottom: number } | null>(null);
  const items = history?.items ?? [];
  const first = items[0]?.seq ?? 0;
  const last = items[items.length - 1]?.seq ?? 0;

  useLayoutEffect(() => {
    const el = box.current;
    if (!el) return;
    if (pending.length > sent.current) stick.current = true; // my own new message: show it
    sent.current = pending.length;
    if (anchor.current && anchor.current.first !== first) {
      el.scrollTop = el.scrollHeight - anchor.current.fromBottom; // keep the view still while prepending
      anchor.current = null;
    } else if (stick.current) {
      el.scrollTop = el.scrollHeight;
    }
  }, [first, last, pending.length, history?.loaded]);

  const onScroll = () => {
    const el = box.current;
    if (!el) return;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (el.scrollTop < 120 && history?.hasMore && !history.loadingOlder) {
      anchor.current = { first, fromBottom: el.scrollHeight - el.scrollTop };
      void loadOlder(conv.id);
    }
  };

  const myRole = conv.members?.find((m) => m.user_id === me)?.role;
  const canModerate = conv.kind === "group" && (myRole === "owner" || myRole === "admin");
  const other = conv.kind === "direct" ? otherMember(conv, state) : null;
  const otherRead = other ? state.receipts[conv.id]?.[other] ?? 0 : 0;
  const seenSeq = other ? [...items].reverse().find((m) => m.sender_id === me && m.seq <= otherRead)?.seq : undefined;

  return (
    <div className="messages" ref={box} onScroll={onScroll} tabIndex={0} aria-label="Messages" data-testid="message-list">
      {history?.loadingOlder && <p className="muted center">Loading earlier messages…</p>}
      {history?.loaded && !history.hasMore && items.length > 0 && <p className="muted center small">This is the beginning of the conversation.</p>}
      {history?.error && <p className="error center" role="alert">Could not load messages: {history.error}</p>}
      {!history?.loaded && !history?.error && <p className="muted center">Loading messages…</p>}
      {history?.loaded && !items.length && !pending.length && <p className="muted center empty">No messages yet. Say hello!</p>}
      <ol className="message-items" aria-live="polite">
        {items.map((m, i) => (
          <MessageItem
            key={m.seq}
            message={m}
            mine={m.sender_id === me}
            showSender={conv.kind === "group" && m.sender_id !== me && items[i - 1]?.sender_id !== m.sender_id}
            canModerate={canModerate}
            seen={m.seq === seenSeq}
            actions={actions}
          />
        ))}
        {pending.map((entry) => (
          <PendingItem key={entry.client_msg_id} entry={entry} />
        ))}
      </ol>
    </div>
  );
}
