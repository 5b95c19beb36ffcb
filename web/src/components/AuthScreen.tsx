import { useState, type FormEvent } from "react";
import { login, register } from "../store/client";
import { describeError } from "../store/messaging";
import { navigate } from "../router";
import { ErrorText } from "./common";
import { useStore, store } from "../store/state";

export function AuthScreen({ mode }: { mode: "login" | "register" }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const notice = useStore((s) => s.toast);

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    store.set({ toast: null });
    try {
      if (mode === "register") await register(username.trim(), password, displayName.trim());
      else await login(username.trim(), password);
      // App moves a signed-in user off /login and /register by itself.
    } catch (e) {
      setError(describeError(e));
    } finally {
      setBusy(false);
    }
  };

  const registering = mode === "register";
  return (
    <main className="auth">
      <form className="auth-card" onSubmit={submit} aria-labelledby="auth-title">
        <h1 id="auth-title">{registering ? "Create your GoChat account" : "Sign in to GoChat"}</h1>
        {notice && <p className="notice" role="status">{notice}</p>}
        <label className="field">
          <span>Username</span>
          <input name="username" value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="username" required maxLength={64} autoFocus />
        </label>
        {registering && (
          <label className="field">
            <span>Display name (optional)</span>
            <input name="display_name" value={displayName} onChange={(e) => setDisplayName(e.target.value)} autoComplete="name" maxLength={256} />
          </label>
        )}
        <label className="field">
          <span>Password</span>
          <input
            name="password"
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            autoComplete={registering ? "new-password" : "current-password"}
            required
          />
        </label>
        <ErrorText error={error} />
        <button type="submit" className="primary" disabled={busy}>
          {busy ? "Please wait…" : registering ? "Create account" : "Sign in"}
        </button>
        <p className="switch">
          {registering ? "Already have an account? " : "New here? "}
          <a
            href={registering ? "/login" : "/register"}
            onClick={(e) => {
              e.preventDefault();
              setError(null);
              navigate(registering ? "/login" : "/register");
            }}
          >
            {registering ? "Sign in" : "Create an account"}
          </a>
        </p>
      </form>
    </main>
  );
}
