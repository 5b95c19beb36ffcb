import { useState, type FormEvent } from "react";
import type { User } from "../api/types";
import { navigate } from "../router";
import { addMembers, createGroup, removeMember, renameGroup, startDirect } from "../store/manage";
import { describeError } from "../store/messaging";
import { displayName, useStore, type ConvState } from "../store/state";
import { Avatar, Dialog, ErrorText } from "./common";
import { UserPicker } from "./UserPicker";

export function NewChatDialog({ onClose }: { onClose: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const pick = async (user: User) => {
    try {
      const id = await startDirect(user.id);
      onClose();
      navigate(`/c/${id}`);
    } catch (e) {
      setError(describeError(e));
    }
  };
  return (
    <Dialog title="New chat" onClose={onClose}>
      <UserPicker label="Find someone" exclude={new Set()} onPick={pick} />
      <ErrorText error={error} />
    </Dialog>
  );
}

export function NewGroupDialog({ onClose }: { onClose: () => void }) {
  const [title, setTitle] = useState("");
  const [members, setMembers] = useState<User[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    try {
      const id = await createGroup(title.trim(), members.map((m) => m.id));
      onClose();
      navigate(`/c/${id}`);
    } catch (e) {
      setError(describeError(e));
      setBusy(false);
    }
  };
  return (
    <Dialog title="New group" onClose={onClose}>
      <form onSubmit={submit} className="stack">
        <label className="field">
          <span>Group name</span>
          <input value={title} onChange={(e) => setTitle(e.target.value)} required maxLength={200} />
        </label>
        <ul className="chips" aria-label="Members to add">
          {members.map((m) => (
            <li key={m.id} className="chip">
              {m.display_name || m.username}
              <button type="button" aria-label={`Remove ${m.display_name || m.username}`} onClick={() => setMembers(members.filter((x) => x.id !== m.id))}>
                ✕
              </button>
            </li>
          ))}
        </ul>
        <UserPicker label="Add people" exclude={new Set(members.map((m) => m.id))} onPick={(u) => setMembers([...members, u])} />
        <ErrorText error={error} />
        <button type="submit" className="primary" disabled={busy || !title.trim()}>
          Create group
        </button>
      </form>
    </Dialog>
  );
}

export function GroupSettingsDialog({ conv, onClose }: { conv: ConvState; onClose: () => void }) {
  const state = useStore((s) => s);
  const me = state.me?.id ?? "";
  const myRole = conv.members?.find((m) => m.user_id === me)?.role ?? "member";
  const manager = myRole === "owner" || myRole === "admin";
  const [title, setTitle] = useState(conv.title ?? "");
  const [error, setError] = useState<string | null>(null);
  const run = async (action: () => Promise<void>) => {
    setError(null);
    try {
      await action();
    } catch (e) {
      setError(describeError(e));
    }
  };
  const rank = { owner: 0, admin: 1, member: 2 } as const;
  return (
    <Dialog title="Group settings" onClose={onClose}>
      <div className="stack">
        {manager ? (
          <form className="row" onSubmit={(e) => (e.preventDefault(), void run(() => renameGroup(conv.id, title.trim())))}>
            <label className="field grow">
              <span>Group name</span>
              <input value={title} onChange={(e) => setTitle(e.target.value)} required maxLength={200} />
            </label>
            <button type="submit" disabled={!title.trim() || title === conv.title}>Rename</button>
          </form>
        ) : (
          <p className="muted">Only owners and admins can rename the group or change its members.</p>
        )}
        <h3>Members ({conv.members?.length ?? 0})</h3>
        <ul className="members" aria-label="Members">
          {(conv.members ?? []).map((m) => (
            <li key={m.user_id} className="member-row">
              <Avatar user={state.users[m.user_id]} name={displayName(state, m.user_id)} id={m.user_id} size="sm" online={m.user_id === me ? null : state.presence[m.user_id] === "online"} />
              <span className="grow">
                {displayName(state, m.user_id)}
                {m.user_id === me && " (you)"}
              </span>
              <span className="muted role">{m.role}</span>
              {manager && m.user_id !== me && rank[m.role] > rank[myRole] && (
                <button type="button" className="danger small" onClick={() => void run(() => removeMember(conv.id, m.user_id))} aria-label={`Remove ${displayName(state, m.user_id)}`}>
                  Remove
                </button>
              )}
            </li>
          ))}
        </ul>
        {manager && (
          <UserPicker
            label="Add people"
            exclude={new Set((conv.members ?? []).map((m) => m.user_id))}
            onPick={(u) => void run(() => addMembers(conv.id, [u.id]))}
          />
        )}
        <ErrorText error={error} />
        <button
          type="button"
          className="danger"
          onClick={() =>
            void run(async () => {
              await removeMember(conv.id, me);
              onClose();
            })
          }
        >
          Leave group
        </button>
      </div>
    </Dialog>
  );
}
