import { useEffect, useRef, useState, type FormEvent, type KeyboardEvent } from "react";
import type { Media, Message } from "../api/types";
import { formatSize } from "../lib/format";
import { upload } from "../store/manage";
import { describeError, editMessage, sendMessage, sendTyping } from "../store/messaging";
import { displayName, useStore } from "../store/state";

interface Attachment {
  key: number;
  file: File;
  progress: number;
  media?: Media;
  error?: string;
  abort?: () => void;
}

let nextKey = 1;

export function Composer({ conversationId, replyTo, editing, onDone, onError }: {
  conversationId: string;
  replyTo: Message | null;
  editing: Message | null;
  onDone: () => void;
  onError: (text: string) => void;
}) {
  const [text, setText] = useState("");
  const [attachments, setAttachments] = useState<Attachment[]>([]);
  const input = useRef<HTMLTextAreaElement>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  const state = useStore((s) => s);

  useEffect(() => {
    if (editing) setText(editing.body ?? "");
    if (editing || replyTo) input.current?.focus();
  }, [editing, replyTo]);

  const patch = (key: number, change: Partial<Attachment>) =>
    setAttachments((all) => all.map((a) => (a.key === key ? { ...a, ...change } : a)));

  const addFiles = (files: FileList | null) => {
    for (const file of Array.from(files ?? [])) {
      const key = nextKey++;
      setAttachments((all) => [...all, { key, file, progress: 0 }]);
      upload(file, (progress) => patch(key, { progress }))
        .then(({ media, abort }) => {
          patch(key, { abort });
          return media;
        })
        .then(
          (media) => patch(key, { media, progress: 1, abort: undefined }),
          (e: unknown) => patch(key, { error: describeError(e), abort: undefined }),
        );
    }
    if (fileInput.current) fileInput.current.value = "";
  };

  const uploading = attachments.some((a) => !a.media && !a.error);
  const ready = attachments.filter((a) => a.media).map((a) => a.media as Media);

  const submit = async (event?: FormEvent) => {
    event?.preventDefault();
    if (uploading) return;
    if (editing) {
      if (!text.trim()) return;
      try {
        await editMessage(editing, text);
        setText("");
        onDone();
      } catch (e) {
        onError(describeError(e));
      }
      return;
    }
    if (!text.trim() && !ready.length) return;
    sendMessage(conversationId, text, replyTo?.seq ?? null, ready);
    setText("");
    setAttachments([]);
    onDone();
  };

  const onKeyDown = (event: KeyboardEvent<HTMLTextAreaElement>) => {
    if (event.key === "Enter" && !event.shiftKey && !event.nativeEvent.isComposing) {
      event.preventDefault();
      void submit();
    } else if (event.key === "Escape" && (editing || replyTo)) {
      event.preventDefault();
      if (editing) setText("");
      onDone();
    }
  };

  return (
    <form className="composer" onSubmit={submit}>
      {(replyTo || editing) && (
        <div className="composer-context" data-testid="composer-context">
          <span>
            {editing ? "Editing message" : `Replying to ${displayName(state, replyTo!.sender_id)}: `}
            {!editing && <span className="muted">{(replyTo!.body ?? "attachment").slice(0, 80)}</span>}
          </span>
          <button type="button" className="icon" aria-label={editing ? "Cancel editing" : "Cancel reply"} onClick={() => (editing && setText(""), onDone())}>
            ✕
          </button>
        </div>
      )}
      {attachments.length > 0 && (
        <ul className="attachments" aria-label="Attachments">
          {attachments.map((a) => (
            <li key={a.key} className="attachment" data-testid="attachment">
              <span className="file-name">{a.file.name}</span>
              <span className="muted">{formatSize(a.file.size)}</span>
              {a.error ? (
                <span className="error-inline" role="alert">{a.error}</span>
              ) : (
                <progress max={1} value={a.progress} aria-label={`Uploading ${a.file.name}`} data-done={!!a.media} />
              )}
              <button type="button" className="icon" aria-label={`Remove ${a.file.name}`} onClick={() => (a.abort?.(), setAttachments((all) => all.filter((x) => x.key !== a.key)))}>
                ✕
              </button>
            </li>
          ))}
        </ul>
      )}
      <div className="composer-row">
        <label className="attach" title="Attach files">
          <span className="sr-only">Attach files</span>
          <svg className="icon-svg" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
            <path d="M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9" fill="none" stroke="currentColor" strokeWidth="2" strokeLinecap="round" />
          </svg>
          <input ref={fileInput} type="file" multiple onChange={(e) => addFiles(e.target.files)} data-testid="file-input" />
        </label>
        <label className="grow">
          <span className="sr-only">Message</span>
          <textarea
            ref={input}
            rows={1}
            value={text}
            placeholder={editing ? "Edit your message" : "Write a message"}
            onChange={(e) => {
              setText(e.target.value);
              if (e.target.value.trim() && !editing) sendTyping(conversationId);
            }}
            onKeyDown={onKeyDown}
            maxLength={4000}
          />
        </label>
        <button type="submit" className="primary" disabled={uploading}>
          {editing ? "Save" : "Send"}
        </button>
      </div>
    </form>
  );
}
