import { useState } from "react";
import type { Message } from "../api/types";
import { formatTime } from "../lib/format";
import { deleteMessage, describeError, discardSend, retrySend, toggleReaction } from "../store/messaging";
import { displayName, useStore, type OutboxEntry } from "../store/state";
import { RichText } from "./common";
import { MediaList } from "./Media";

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🎉"];

export interface MessageActions {
  onReply: (message: Message) => void;
  onEdit: (message: Message) => void;
  onError: (text: string) => void;
}

export function MessageItem({ message, mine, showSender, canModerate, seen, actions }: {
  message: Message;
  mine: boolean;
  showSender: boolean;
  canModerate: boolean;
  seen: boolean;
  actions: MessageActions;
}) {
  const [picker, setPicker] = useState(false);
  const [confirming, setConfirming] = useState(false);
  const state = useStore((s) => s);
  const me = state.me?.id ?? "";
  const replied = message.reply_to_seq
    ? state.histories[message.conversation_id]?.items.find((m) => m.seq === message.reply_to_seq)
    : undefined;
  const run = (action: Promise<void>) => action.catch((e: unknown) => actions.onError(describeError(e)));
  return (
    <li className={`msg ${mine ? "mine" : "theirs"}`} tabIndex={0} id={`msg-${message.seq}`} data-seq={message.seq} data-testid="message" data-status="sent">
      <div className="bubble">
        {showSender && <div className="sender">{displayName(state, message.sender_id)}</div>}
        {message.reply_to_seq && (
          <a className="quote" href={`#msg-${message.reply_to_seq}`} data-testid="reply-quote">
            <span className="quote-name">{replied ? displayName(state, replied.sender_id) : "Earlier message"}</span>
            <span className="quote-text">{replied ? (replied.deleted ? "deleted message" : replied.body || "attachment") : `#${message.reply_to_seq}`}</span>
          </a>
        )}
        {message.deleted ? (
          <p className="body deleted">This message was deleted</p>
        ) : (
          <>
            {message.body && <p className="body" data-testid="message-body"><RichText text={message.body} /></p>}
            <MediaList media={message.media ?? []} />
          </>
        )}
        <div className="meta">
          <time dateTime={message.created_at}>{formatTime(message.created_at)}</time>
          {message.edited_at && !message.deleted && <span className="edited">(edited)</span>}
          {seen && <span className="seen" data-testid="seen">Seen</span>}
        </div>
        {!!message.reactions?.length && (
          <div className="reactions">
            {message.reactions.map((r) => (
              <button
                key={r.emoji}
                type="button"
                className={`reaction${r.user_ids.includes(me) ? " own" : ""}`}
                aria-pressed={r.user_ids.includes(me)}
                aria-label={`${r.emoji} ${r.count}`}
                onClick={() => void run(toggleReaction(message, r.emoji))}
                data-testid="reaction"
              >
                {r.emoji} {r.count}
              </button>
            ))}
          </div>
        )}
      </div>
      {!message.deleted && (
        <div className="msg-actions" role="toolbar" aria-label="Message actions">
          <button type="button" onClick={() => actions.onReply(message)}>Reply</button>
          <button type="button" aria-expanded={picker} onClick={() => setPicker(!picker)}>React</button>
          {mine && <button type="button" onClick={() => actions.onEdit(message)}>Edit</button>}
          {(mine || canModerate) && !confirming && (
            <button type="button" onClick={() => setConfirming(true)}>Delete</button>
          )}
          {confirming && (
            <span className="confirm" role="group" aria-label="Delete this message for everyone?">
              <span>Delete for everyone?</span>
              <button type="button" className="danger small" onClick={() => (setConfirming(false), void run(deleteMessage(message)))}>Yes, delete</button>
              <button type="button" className="small" onClick={() => setConfirming(false)}>Cancel</button>
            </span>
          )}
          {picker && (
            <span className="picker-pop" role="group" aria-label="Reactions">
              {QUICK_REACTIONS.map((emoji) => (
                <button key={emoji} type="button" aria-label={`React ${emoji}`} onClick={() => (setPicker(false), void run(toggleReaction(message, emoji)))}>
                  {emoji}
                </button>
              ))}
            </span>
          )}
        </div>
      )}
    </li>
  );
}

export function PendingItem({ entry }: { entry: OutboxEntry }) {
  const failed = entry.status === "failed";
  const online = useStore((s) => s.status === "online");
  return (
    <li className={`msg mine ${entry.status}`} data-testid="message" data-status={entry.status} data-client-id={entry.client_msg_id}>
      <div className="bubble">
        {entry.body && <p className="body" data-testid="message-body"><RichText text={entry.body} /></p>}
        {entry.media.length > 0 && <p className="muted">Attachment: {entry.media.map((m) => m.filename).join(", ")}</p>}
        <div className="meta">
          {failed ? (
            <span className="error-inline" role="alert">Not sent{entry.error ? `: ${entry.error}` : ""}</span>
          ) : (
            <span className="pending-label">{online ? "Sending…" : "Waiting for connection…"}</span>
          )}
        </div>
      </div>
      {failed && (
        <div className="msg-actions visible">
          <button type="button" onClick={() => retrySend(entry.client_msg_id)}>Retry</button>
          <button type="button" onClick={() => discardSend(entry.client_msg_id)}>Discard</button>
        </div>
      )}
    </li>
  );
}
