// The /ws connection: auth frame -> ready, requests with ids -> ack/error, events out.
// Reconnects by itself with capped exponential backoff and jitter; on close 4001 it refreshes
// the tokens first; 4500-4999 are terminal. A server frame may hold several JSON objects, one
// per line.
import { AuthExpired, session } from "./session";
import type { ServerFrame } from "./types";

export type ConnectionStatus = "connecting" | "online" | "offline" | "terminal";

export class RequestFailed extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

interface PendingRequest {
  resolve: (ack: Record<string, unknown>) => void;
  reject: (error: RequestFailed) => void;
  timer: number;
}

export interface RealtimeHandlers {
  onEvent: (frame: ServerFrame) => void;
  onReady: () => void;
  onStatus: (status: ConnectionStatus, detail: string) => void;
  onAuthLost: () => void;
}

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 8_000;
const REQUEST_TIMEOUT_MS = 15_000;

export function backoffDelay(attempt: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export function socketUrl(): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws`;
}

export class Realtime {
  private ws: WebSocket | null = null;
  private ready = false;
  private stopped = true;
  private attempt = 0;
  private nextId = 1;
  private pending = new Map<string, PendingRequest>();
  private reconnectTimer: number | undefined;
  private heartbeatTimer: number | undefined;
  private lastFrameAt = 0;
  private heartbeatMs = 20_000;
  private unsubscribeSession: (() => void) | null = null;

  constructor(private readonly handlers: RealtimeHandlers) {}

  get isOnline(): boolean {
    return this.ready;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener("online", this.reconnectNow);
    this.unsubscribeSession = session.onChange(this.reauthenticate);
    void this.connect();
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener("online", this.reconnectNow);
    this.unsubscribeSession?.();
    window.clearTimeout(this.reconnectTimer);
    this.teardown(1000, "bye");
  }

  /** A request with an id; resolves with the ack, rejects with the error frame. */
  request(frame: Record<string, unknown>, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Record<string, unknown>> {
    if (!this.ready || !this.ws) return Promise.reject(new RequestFailed("offline", "not connected"));
    const id = `r${this.nextId++}`;
    return new Promise((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id);
        reject(new RequestFailed("timeout", "the server did not answer in time"));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.ws?.send(JSON.stringify({ ...frame, id }));
    });
  }

  /** A frame that needs no reply (typing); dropped when offline. */
  notify(frame: Record<string, unknown>): void {
    if (this.ready) this.ws?.send(JSON.stringify(frame));
  }

  private reconnectNow = (): void => {
    if (this.stopped || this.ws) return;
    window.clearTimeout(this.reconnectTimer);
    this.attempt = 0;
    void this.connect();
  };

  private reauthenticate = (): void => {
    const token = session.accessToken;
    if (this.ready && token) this.request({ type: "auth", token }).catch(() => undefined);
  };

  private async connect(): Promise<void> {
    if (this.stopped) return;
    this.handlers.onStatus("connecting", "");
    try {
      if (session.expiresSoon()) await session.refresh();
    } catch (error) {
      if (error instanceof AuthExpired) return this.authLost();
      return this.scheduleReconnect("cannot reach the server");
    }
    const ws = new WebSocket(socketUrl());
    this.ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token: session.accessToken ?? "" }));
    ws.onmessage = (event: MessageEvent) => this.receive(String(event.data));
    ws.onclose = (event: CloseEvent) => {
      if (this.ws === ws) this.closed(event.code, event.reason);
    };
  }

  private receive(data: string): void {
    this.lastFrameAt = Date.now();
    for (const line of data.split("\n")) {
      if (!line.trim()) continue;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(line) as ServerFrame;
      } catch {
        continue;
      }
      this.dispatch(frame);
    }
  }

  private dispatch(frame: ServerFrame): void {
    if (frame.type === "ready") {
      this.ready = true;
      this.attempt = 0;
      this.heartbeatMs = Math.max(5, frame.heartbeat_s) * 1000;
      this.startHeartbeat();
      this.handlers.onStatus("online", "");
      this.handlers.onReady();
      return;
    }
    if ((frame.type === "ack" || frame.type === "error" || frame.type === "pong") && frame.id != null) {
      const waiting = this.pending.get(String(frame.id));
      if (waiting) {
        this.pending.delete(String(frame.id));
        window.clearTimeout(waiting.timer);
        if (frame.type === "error") waiting.reject(new RequestFailed(frame.code, frame.message));
        else waiting.resolve(frame as Record<string, unknown>);
      }
      return;
    }
    this.handlers.onEvent(frame);
  }

  private closed(code: number, reason: string): void {
    this.teardown();
    if (this.stopped) return;
    if (code >= 4500 && code <= 4999) {
      this.stopped = true;
      this.handlers.onStatus("terminal", reason || `closed by the server (${code})`);
      return;
    }
    if (code === 4001) {
      session.refresh(true).then(
        () => this.scheduleReconnect("reconnecting", 0),
        (error: unknown) => (error instanceof AuthExpired ? this.authLost() : this.scheduleReconnect("offline")),
      );
      return;
    }
    this.scheduleReconnect(code === 1001 ? "the server is restarting" : "connection lost");
  }

  private scheduleReconnect(detail: string, delay?: number): void {
    if (this.stopped) return;
    this.handlers.onStatus("offline", detail);
    window.clearTimeout(this.reconnectTimer);
    const wait = delay ?? backoffDelay(this.attempt++);
    this.reconnectTimer = window.setTimeout(() => void this.connect(), wait);
  }

  private authLost(): void {
    this.stopped = true;
    this.handlers.onAuthLost();
  }

  private teardown(code?: number, reason?: string): void {
    window.clearInterval(this.heartbeatTimer);
    const ws = this.ws;
    this.ws = null;
    this.ready = false;
    if (ws) {
      ws.onclose = null;
      ws.onmessage = null;
      if (code !== undefined && ws.readyState <= WebSocket.OPEN) ws.close(code, reason);
    }
    for (const [id, waiting] of this.pending) {
      window.clearTimeout(waiting.timer);
      waiting.reject(new RequestFailed("offline", "the connection was lost"));
      this.pending.delete(id);
    }
  }

  /** Ping when idle; a socket silent for two heartbeats is dead: close and reconnect. */
  private startHeartbeat(): void {
    window.clearInterval(this.heartbeatTimer);
    this.lastFrameAt = Date.now();
    this.heartbeatTimer = window.setInterval(() => {
      const idle = Date.now() - this.lastFrameAt;
      if (idle > this.heartbeatMs * 2) {
        const ws = this.ws;
        this.teardown(4000, "heartbeat timeout");
        if (ws) this.scheduleReconnect("connection lost");
      } else if (idle > this.heartbeatMs / 2) {
        this.request({ type: "ping" }).catch(() => undefined);
      }
    }, this.heartbeatMs / 2);
  }
}
