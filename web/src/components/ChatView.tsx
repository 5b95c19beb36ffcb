import { useEffect, useState } from "react";
import type { Message } from "../api/types";
import { navigate } from "../router";
import { setMuted } from "../store/manage";
import { closeConversation, describeError, openConversation } from "../store/messaging";
import { conversationName, displayName, otherMember, useStore } from "../store/state";
import { Avatar, ErrorText } from "./common";
import { Composer } from "./Composer";
import { GroupSettingsDialog } from "./Dialogs";
import { MessageList } from "./MessageList";

export function ChatView({ id }: { id: string }) {
  const state = useStore((s) => s);
  const conv = state.conversations[id];
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [settings, setSettings] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const known = !!conv;

  useEffect(() => {
    setReplyTo(null);
    setEditing(null);
    setError(null);
    if (known) void openConversation(id);
    return () => closeConversation();
  }, [id, known]);

  if (!conv) {
    return (
      <section className="chat empty-pane" aria-label="Conversation">
        <p className="muted">{state.listLoaded ? "This conversation does not exist or you are not a member." : "Loading…"}</p>
        <button type="button" onClick={() => navigate("/")}>Back to conversations</button>
      </section>
    );
  }

  const name = conversationName(conv, state);
  const other = conv.kind === "direct" ? otherMember(conv, state) : null;
  const online = other ? state.presence[other] === "online" : null;
  const typers = Object.entries(state.typing[id] ?? {})
    .filter(([user, until]) => user !== state.me?.id && until > Date.now())
    .map(([user]) => displayName(state, user));
  const subtitle = other ? (online ? "online" : "offline") : `${conv.members?.length ?? "…"} members`;

  return (
    <section className="chat" aria-label={`Conversation with ${name}`}>
      <header className="chat-head">
        <button type="button" className="icon back" aria-label="Back to conversations" onClick={() => navigate("/")}>
          ←
        </button>
        <Avatar user={other ? state.users[other] : null} name={name} id={other ?? conv.id} online={online} />
        <div className="chat-title">
          <h2 data-testid="chat-title">{name}</h2>
          <span className="muted small">{subtitle}</span>
        </div>
        <button type="button" aria-pressed={!!conv.muted} onClick={() => setMuted(id, !conv.muted).catch((e: unknown) => setError(describeError(e)))}>
          {conv.muted ? "Unmute" : "Mute"}
        </button>
        {conv.kind === "group" && !conv.left && (
          <button type="button" onClick={() => setSettings(true)}>
            Group settings
          </button>
        )}
      </header>
      <ErrorText error={error} />
      <MessageList
        conv={conv}
        actions={{
          onReply: (m) => (setEditing(null), setReplyTo(m)),
          onEdit: (m) => (setReplyTo(null), setEditing(m)),
          onError: setError,
        }}
      />
      <p className="typing" aria-live="polite" data-testid="typing">
        {typers.length ? `${typers.join(", ")} ${typers.length > 1 ? "are" : "is"} typing…` : ""}
      </p>
      {conv.left ? (
        <p className="left-note" role="status">You are no longer a member of this group.</p>
      ) : (
        <Composer
          key={id}
          conversationId={id}
          replyTo={replyTo}
          editing={editing}
          onDone={() => (setReplyTo(null), setEditing(null))}
          onError={setError}
        />
      )}
      {settings && <GroupSettingsDialog conv={conv} onClose={() => setSettings(false)} />}
    </section>
  );
}
