// REST under /api/v1 with the bearer token; a 401 refreshes the tokens once and retries.
import { AuthExpired, session } from "./session";
import type { ApiErrorBody } from "./types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const API = "/api/v1";

async function toError(response: Response): Promise<ApiError> {
  let body: ApiErrorBody = {};
  try {
    body = (await response.json()) as ApiErrorBody;
  } catch {
    // not JSON (a proxy's error page): keep the status only
  }
  const field = body.error?.fields?.[0];
  const detail = field ? `${field.field}: ${field.message}` : body.error?.message;
  return new ApiError(response.status, body.error?.code ?? "http_error", detail ?? response.statusText);
}

async function send(method: string, path: string, body: unknown): Promise<Response> {
  const headers: Record<string, string> = {};
  const token = session.accessToken;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  try {
    return await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "cannot reach the server");
  }
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  if (session.current && session.expiresSoon(5_000)) await refreshOrThrow();
  let response = await send(method, path, body);
  if (response.status === 401 && session.current) {
    await refreshOrThrow(true);
    response = await send(method, path, body);
  }
  if (!response.ok) throw await toError(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

async function refreshOrThrow(force = false): Promise<void> {
  try {
    await session.refresh(force);
  } catch (error) {
    if (error instanceof AuthExpired) throw new ApiError(401, "invalid_token", error.message);
    throw new ApiError(0, "network", "cannot reach the server");
  }
}

/** Unauthenticated calls (register, login). */
export async function publicApi<T>(path: string, body: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(API + path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "network", "cannot reach the server");
  }
  if (!response.ok) throw await toError(response);
  return (await response.json()) as T;
}

/** Media bytes with the bearer token, as a blob: URL (img-src allows blob:). */
export async function fetchBlob(url: string): Promise<Blob> {
  const headers: Record<string, string> = {};
  const sameOrigin = new URL(url, location.href).origin === location.origin;
  if (sameOrigin && session.accessToken) headers.Authorization = `Bearer ${session.accessToken}`;
  let response = await fetch(url, { headers });
  if (response.status === 401 && sameOrigin) {
    await refreshOrThrow(true);
    headers.Authorization = `Bearer ${session.accessToken ?? ""}`;
    response = await fetch(url, { headers });
  }
  if (!response.ok) throw await toError(response);
  return response.blob();
}

export const get = <T>(path: string): Promise<T> => api<T>("GET", path);
