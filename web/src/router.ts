// A tiny history router: /login, /register, /, /c/:id, /profile. The server answers every
// such path with index.html (SPA fallback).
import { useSyncExternalStore } from "react";

export type Route =
  | { name: "login" }
  | { name: "register" }
  | { name: "home" }
  | { name: "chat"; id: string }
  | { name: "profile" };

export function parseRoute(path: string): Route {
  if (path === "/login") return { name: "login" };
  if (path === "/register") return { name: "register" };
  if (path === "/profile") return { name: "profile" };
  const chat = /^\/c\/(\d{1,20})$/.exec(path);
  if (chat) return { name: "chat", id: chat[1] };
  return { name: "home" };
}

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

export function navigate(path: string, replace = false): void {
  if (location.pathname === path) return;
  if (replace) history.replaceState(null, "", path);
  else history.pushState(null, "", path);
  listeners.forEach((l) => l());
}

function subscribe(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function usePath(): string {
  return useSyncExternalStore(subscribe, () => location.pathname);
}

export function useRoute(): Route {
  return parseRoute(usePath());
}
