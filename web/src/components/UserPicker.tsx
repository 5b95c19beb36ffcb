// Search users by name prefix and pick one (used by new chat, new group, add members).
import { useEffect, useState } from "react";
import type { User } from "../api/types";
import { searchUsers } from "../store/manage";
import { describeError } from "../store/messaging";
import { useStore } from "../store/state";
import { Avatar, ErrorText } from "./common";

export function UserPicker({ onPick, exclude, label }: { onPick: (user: User) => void; exclude: Set<string>; label: string }) {
  const [query, setQuery] = useState("");
  const [results, setResults] = useState<User[]>([]);
  const [error, setError] = useState<string | null>(null);
  const me = useStore((s) => s.me?.id);
  useEffect(() => {
    const q = query.trim();
    if (!q) {
      setResults([]);
      return;
    }
    let live = true;
    const timer = window.setTimeout(() => {
      searchUsers(q).then(
        (users) => live && (setResults(users), setError(null)),
        (e: unknown) => live && setError(describeError(e)),
      );
    }, 200);
    return () => {
      live = false;
      window.clearTimeout(timer);
    };
  }, [query]);
  const shown = results.filter((u) => u.id !== me && !exclude.has(u.id));
  return (
    <div className="picker">
      <label className="field">
        <span>{label}</span>
        <input type="search" value={query} onChange={(e) => setQuery(e.target.value)} placeholder="Username" autoComplete="off" />
      </label>
      <ErrorText error={error} />
      <ul className="picker-results" aria-label="Search results">
        {shown.map((user) => (
          <li key={user.id}>
            <button type="button" className="user-row" onClick={() => onPick(user)}>
              <Avatar user={user} name={user.display_name || user.username} id={user.id} size="sm" />
              <span className="user-names">
                <span className="name">{user.display_name || user.username}</span>
                <span className="muted">@{user.username}</span>
              </span>
            </button>
          </li>
        ))}
        {query.trim() && !shown.length && !error && <li className="muted empty-small">No matching users</li>}
      </ul>
    </div>
  );
}
