// Small shared pieces: avatar, presence dot, rich text, dialogs, media blobs.
import { useEffect, useRef, useState, type ReactNode } from "react";
import { fetchBlob } from "../api/http";
import { linkify } from "../lib/linkify";
import { initials } from "../lib/format";
import type { User } from "../api/types";

/** User text with safe http(s) links; everything else is a text node. */
export function RichText({ text }: { text: string }) {
  return (
    <>
      {linkify(text).map((piece, i) =>
        piece.kind === "link" ? (
          <a key={i} href={piece.href} target="_blank" rel="noopener noreferrer">
            {piece.text}
          </a>
        ) : (
          <span key={i}>{piece.text}</span>
        ),
      )}
    </>
  );
}

const blobCache = new Map<string, Promise<string>>();

/** Signed (?sig=) or other-origin links load as they are; others need the bearer token. */
export function isDirectUrl(url: string): boolean {
  const parsed = new URL(url, location.href);
  return parsed.origin !== location.origin || parsed.searchParams.has("sig");
}

/** A blob: URL for an authenticated media URL (fetched once per URL). */
export function useBlobUrl(url: string | null | undefined): { src: string | null; failed: boolean } {
  const [state, setState] = useState<{ src: string | null; failed: boolean }>({ src: null, failed: false });
  useEffect(() => {
    if (!url) return;
    if (isDirectUrl(url)) {
      setState({ src: url, failed: false });
      return;
    }
    let live = true;
    let request = blobCache.get(url);
    if (!request) {
      request = fetchBlob(url).then((blob) => URL.createObjectURL(blob));
      blobCache.set(url, request);
      request.catch(() => blobCache.delete(url));
    }
    request.then(
      (src) => live && setState({ src, failed: false }),
      () => live && setState({ src: null, failed: true }),
    );
    return () => {
      live = false;
    };
  }, [url]);
  return url ? state : { src: null, failed: false };
}

function colorClass(id: string): string {
  let hash = 0;
  for (const ch of id) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return `av-${hash % 8}`;
}

export function Avatar({ user, name, id, size = "md", online }: {
  user?: User | null;
  name: string;
  id: string;
  size?: "sm" | "md" | "lg";
  online?: boolean | null;
}) {
  const { src } = useBlobUrl(user?.avatar_url);
  return (
    <span className={`avatar avatar-${size} ${colorClass(id)}`} aria-hidden="true">
      {src ? <img src={src} alt="" /> : initials(name)}
      {online != null && <span className={`dot ${online ? "online" : "offline"}`} data-testid="presence-dot" data-online={online} />}
    </span>
  );
}

export function Dialog({ title, onClose, children }: { title: string; onClose: () => void; children: ReactNode }) {
  const ref = useRef<HTMLDivElement>(null);
  const close = useRef(onClose);
  close.current = onClose;
  // Once per opening: focus the first field, Escape closes, focus returns where it was.
  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    const root = ref.current;
    const first = root?.querySelector<HTMLElement>("input, textarea, select") ?? root?.querySelector<HTMLElement>("button");
    first?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") {
        event.stopPropagation();
        close.current();
      }
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      if (previous?.isConnected) previous.focus();
    };
  }, []);
  return (
    <div className="backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className="dialog" role="dialog" aria-modal="true" aria-label={title} ref={ref}>
        <header className="dialog-head">
          <h2>{title}</h2>
          <button type="button" className="icon" aria-label="Close" onClick={onClose}>
            ✕
          </button>
        </header>
        {children}
      </div>
    </div>
  );
}

export function ErrorText({ error }: { error: string | null }) {
  return error ? (
    <p className="error" role="alert">
      {error}
    </p>
  ) : null;
}
