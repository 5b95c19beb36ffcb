import { useState, type FormEvent } from "react";
import { navigate } from "../router";
import { logout } from "../store/client";
import { updateProfile, upload } from "../store/manage";
import { describeError } from "../store/messaging";
import { askNotificationPermission, notificationsSupported } from "../store/notify";
import { useStore } from "../store/state";
import { Avatar, ErrorText } from "./common";

export function ProfileScreen() {
  const me = useStore((s) => s.me);
  const [displayName, setDisplayName] = useState(me?.display_name ?? "");
  const [bio, setBio] = useState(me?.bio ?? "");
  const [progress, setProgress] = useState<number | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const [permission, setPermission] = useState(notificationsSupported() ? Notification.permission : "unsupported");
  if (!me) return null;

  const save = async (event: FormEvent) => {
    event.preventDefault();
    setError(null);
    setSaved(false);
    try {
      await updateProfile({ display_name: displayName.trim(), bio });
      setSaved(true);
    } catch (e) {
      setError(describeError(e));
    }
  };

  const changeAvatar = async (file: File | undefined) => {
    if (!file) return;
    setError(null);
    setProgress(0);
    try {
      const started = await upload(file, setProgress);
      const media = await started.media;
      await updateProfile({ avatar_media_id: media.id });
    } catch (e) {
      setError(describeError(e));
    } finally {
      setProgress(null);
    }
  };

  return (
    <section className="profile" aria-labelledby="profile-title">
      <header className="chat-head">
        <button type="button" className="icon back" aria-label="Back to conversations" onClick={() => navigate("/")}>
          ←
        </button>
        <h2 id="profile-title">Your profile</h2>
      </header>
      <div className="profile-body">
        <div className="avatar-edit">
          <Avatar user={me} name={me.display_name || me.username} id={me.id} size="lg" />
          <label className="button-like">
            Change avatar
            <input type="file" accept="image/*" onChange={(e) => void changeAvatar(e.target.files?.[0])} data-testid="avatar-input" />
          </label>
          {progress !== null && <progress max={1} value={progress} aria-label="Uploading avatar" />}
        </div>
        <p className="muted">Signed in as @{me.username}</p>
        <form className="stack" onSubmit={save}>
          <label className="field">
            <span>Display name</span>
            <input value={displayName} onChange={(e) => setDisplayName(e.target.value)} maxLength={256} />
          </label>
          <label className="field">
            <span>Bio</span>
            <textarea value={bio} onChange={(e) => setBio(e.target.value)} maxLength={2000} rows={3} />
          </label>
          <ErrorText error={error} />
          {saved && <p role="status" className="notice">Saved.</p>}
          <button type="submit" className="primary">Save profile</button>
        </form>
        <div className="stack">
          <h3>Notifications</h3>
          {permission === "granted" && <p className="muted">Desktop notifications are on (muted conversations stay quiet).</p>}
          {permission === "denied" && <p className="muted">Notifications are blocked in this browser's site settings.</p>}
          {permission === "unsupported" && <p className="muted">This browser has no desktop notifications.</p>}
          {permission === "default" && (
            <button type="button" onClick={() => void askNotificationPermission().then(setPermission)}>
              Enable desktop notifications
            </button>
          )}
        </div>
        <button type="button" className="danger" onClick={() => void logout()}>
          Sign out
        </button>
      </div>
    </section>
  );
}
