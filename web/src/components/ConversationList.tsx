import { useMemo, useState } from "react";
import { navigate } from "../router";
import { formatTime } from "../lib/format";
import { conversationName, displayName, lastActivity, otherMember, useStore, type ConvState, type State } from "../store/state";
import { Avatar } from "./common";
import { NewChatDialog, NewGroupDialog } from "./Dialogs";

function preview(conv: ConvState, state: State): string {
  const last = conv.last_message;
  if (!last) return "No messages yet";
  const who = last.sender_id === state.me?.id ? "You: " : conv.kind === "group" ? `${displayName(state, last.sender_id)}: ` : "";
  if (last.deleted) return `${who}message deleted`;
  return who + (last.body || (last.media.length ? "Attachment" : ""));
}

export function ConversationList({ activeId }: { activeId: string | null }) {
  const state = useStore((s) => s);
  const [filter, setFilter] = useState("");
  const [dialog, setDialog] = useState<"chat" | "group" | null>(null);
  const items = useMemo(() => {
    const q = filter.trim().toLowerCase();
    return Object.values(state.conversations)
      .filter((c) => !q || conversationName(c, state).toLowerCase().includes(q))
      .sort((a, b) => lastActivity(b).localeCompare(lastActivity(a)));
  }, [state, filter]);
  const me = state.me;

  return (
    <nav className="sidebar" aria-label="Conversations">
      <header className="sidebar-head">
        <h1 className="brand">GoChat</h1>
        <div className="head-actions">
          <button type="button" onClick={() => setDialog("chat")}>New chat</button>
          <button type="button" onClick={() => setDialog("group")}>New group</button>
          {me && (
            <a href="/profile" className="me-link" aria-label="Your profile" onClick={(e) => (e.preventDefault(), navigate("/profile"))}>
              <Avatar user={me} name={me.display_name || me.username} id={me.id} size="sm" />
            </a>
          )}
        </div>
      </header>
      <label className="search">
        <span className="sr-only">Search conversations</span>
        <input type="search" placeholder="Search conversations" value={filter} onChange={(e) => setFilter(e.target.value)} />
      </label>
      {state.listError && <p className="error" role="alert">{state.listError}</p>}
      {!state.listLoaded && !state.listError && <p className="muted pad">Loading conversations…</p>}
      {state.listLoaded && !items.length && (
        <div className="empty pad">
          {filter ? <p>No conversation matches “{filter}”.</p> : <p>No conversations yet. Start one with <strong>New chat</strong>.</p>}
        </div>
      )}
      <ul className="conv-list">
        {items.map((conv) => (
          <ConversationRow key={conv.id} conv={conv} state={state} active={conv.id === activeId} />
        ))}
      </ul>
      {dialog === "chat" && <NewChatDialog onClose={() => setDialog(null)} />}
      {dialog === "group" && <NewGroupDialog onClose={() => setDialog(null)} />}
    </nav>
  );
}

function ConversationRow({ conv, state, active }: { conv: ConvState; state: State; active: boolean }) {
  const name = conversationName(conv, state);
  const other = conv.kind === "direct" ? otherMember(conv, state) : null;
  const online = other ? state.presence[other] === "online" : null;
  const unread = conv.left ? 0 : conv.unread_count;
  const mentions = conv.left ? 0 : conv.mention_count ?? 0;
  return (
    <li>
      <a
        href={`/c/${conv.id}`}
        className={`conv-row${active ? " active" : ""}${unread ? " has-unread" : ""}`}
        aria-current={active ? "page" : undefined}
        data-testid="conversation"
        data-conversation-id={conv.id}
        onClick={(e) => (e.preventDefault(), navigate(`/c/${conv.id}`))}
      >
        <Avatar user={other ? state.users[other] : null} name={name} id={other ?? conv.id} online={online} />
        <span className="conv-main">
          <span className="conv-top">
            <span className="conv-name" data-testid="conversation-name">{name}</span>
            <span className="conv-time">{formatTime(lastActivity(conv))}</span>
          </span>
          <span className="conv-bottom">
            <span className="conv-preview">{conv.left ? "You are no longer a member" : preview(conv, state)}</span>
            {conv.muted && <span className="muted-label">muted</span>}
            {mentions > 0 && <span className="badge mention" data-testid="mention-badge" aria-label={`${mentions} mentions`}>@</span>}
            {unread > 0 && <span className={`badge${conv.muted ? " quiet" : ""}`} data-testid="unread-badge" aria-label={`${unread} unread`}>{unread}</span>}
          </span>
        </span>
      </a>
    </li>
  );
}
