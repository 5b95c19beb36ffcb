// The login session: tokens in localStorage (so a reload stays signed in), the access token
// refreshed before it expires, and refresh-token rotation honoured: every refresh returns a
// NEW refresh token, which replaces the old one at once (reusing an old one revokes the
// session). Tabs of one browser share the stored tokens and refresh under a Web Lock, so two
// tabs never present the same refresh token twice.
import type { Tokens } from "./types";

const STORAGE_KEY = "gochat.session";
const LOCK_NAME = "gochat.refresh";

export interface StoredSession {
  access_token: string;
  refresh_token: string;
  expires_at: number; // epoch ms
  user_id: string;
  session_id: string;
}

export class AuthExpired extends Error {
  constructor() {
    super("your session has ended; please sign in again");
  }
}

type Listener = () => void;

function readStored(): StoredSession | null {
  try {
    const raw = localStorage.getItem(STORAGE_KEY);
    if (!raw) return null;
    const value = JSON.parse(raw) as StoredSession;
    return typeof value.refresh_token === "string" ? value : null;
  } catch {
    return null;
  }
}

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  if (typeof navigator !== "undefined" && navigator.locks) {
    return navigator.locks.request(LOCK_NAME, fn) as Promise<T>;
  }
  return fn();
}

export class Session {
  private state: StoredSession | null = readStored();
  private inflight: Promise<void> | null = null;
  private timer: number | undefined;
  private listeners = new Set<Listener>();

  get current(): StoredSession | null {
    return this.state;
  }

  get accessToken(): string | null {
    return this.state?.access_token ?? null;
  }

  get userId(): string | null {
    return this.state?.user_id ?? null;
  }

  /** Called on every token change (the socket re-authenticates with the new access token). */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  adopt(tokens: Tokens): void {
    this.save({
      access_token: tokens.access_token,
      refresh_token: tokens.refresh_token,
      expires_at: Date.now() + tokens.expires_in * 1000,
      user_id: tokens.user_id,
      session_id: tokens.session_id,
    });
  }

  clear(): void {
    this.state = null;
    window.clearTimeout(this.timer);
    localStorage.removeItem(STORAGE_KEY);
    this.emit();
  }

  /** True if the access token is missing or expires within `marginMs`. */
  expiresSoon(marginMs = 30_000): boolean {
    return !this.state || this.state.expires_at - Date.now() < marginMs;
  }

  /** Rotate tokens now; `force` even if another tab's fresh token looks usable. */
  refresh(force = false): Promise<void> {
    if (!this.inflight) {
      this.inflight = withLock(() => this.refreshLocked(force)).finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  /** Resume timers after a reload. */
  start(): void {
    if (this.state) this.schedule();
  }

  private async refreshLocked(force: boolean): Promise<void> {
    const stored = readStored();
    if (!stored) {
      this.clear();
      throw new AuthExpired();
    }
    const rotatedElsewhere = stored.refresh_token !== this.state?.refresh_token;
    if (rotatedElsewhere && (!force || stored.expires_at - Date.now() > 30_000)) {
      this.save(stored); // another tab already rotated: use its tokens
      return;
    }
    const response = await fetch("/api/v1/auth/refresh", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ refresh_token: stored.refresh_token }),
    });
    if (response.status === 401 || response.status === 403) {
      this.clear();
      throw new AuthExpired();
    }
    if (!response.ok) throw new Error(`refresh failed (${response.status})`);
    this.adopt((await response.json()) as Tokens);
  }

  private save(state: StoredSession): void {
    this.state = state;
    localStorage.setItem(STORAGE_KEY, JSON.stringify(state));
    this.schedule();
    this.emit();
  }

  private schedule(): void {
    window.clearTimeout(this.timer);
    if (!this.state) return;
    const ttl = this.state.expires_at - Date.now();
    // Refresh at 80% of the lifetime, and at least a minute early when the lifetime allows.
    const lead = Math.min(60_000, Math.max(5_000, ttl * 0.2));
    const delay = Math.max(1_000, ttl - lead);
    this.timer = window.setTimeout(() => {
      this.refresh().catch(() => {
        // Offline or the server is down: try again shortly; AuthExpired already cleared us.
        if (this.state) this.timer = window.setTimeout(() => this.schedule(), 10_000);
      });
    }, delay);
  }

  private emit(): void {
    for (const listener of this.listeners) listener();
  }
}

export const session = new Session();
