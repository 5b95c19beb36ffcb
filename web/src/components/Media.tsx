// Attachments: images as thumbnails that open full size; other files download on click.
import { useState } from "react";
import { fetchBlob } from "../api/http";
import type { Media } from "../api/types";
import { formatSize } from "../lib/format";
import { Dialog, isDirectUrl, useBlobUrl } from "./common";

export function MediaList({ media }: { media: Media[] }) {
  if (!media.length) return null;
  return (
    <div className="media-list">
      {media.map((m) => (m.content_type.startsWith("image/") ? <ImageThumb key={m.id} media={m} /> : <FileLink key={m.id} media={m} />))}
    </div>
  );
}

function ImageThumb({ media }: { media: Media }) {
  const [open, setOpen] = useState(false);
  const { src, failed } = useBlobUrl(media.thumbnail_url || media.url);
  return (
    <>
      <button type="button" className="thumb" onClick={() => setOpen(true)} aria-label={`Open image ${media.filename}`} data-testid="image-thumb">
        {src ? <img src={src} alt={media.filename} /> : <span className="thumb-placeholder">{failed ? "Image unavailable" : "Loading…"}</span>}
      </button>
      {open && <Lightbox media={media} onClose={() => setOpen(false)} />}
    </>
  );
}

function Lightbox({ media, onClose }: { media: Media; onClose: () => void }) {
  const { src, failed } = useBlobUrl(media.url);
  return (
    <Dialog title={media.filename} onClose={onClose}>
      <div className="lightbox">
        {src ? <img src={src} alt={media.filename} data-testid="image-full" /> : <p className="muted">{failed ? "Could not load the image." : "Loading…"}</p>}
      </div>
    </Dialog>
  );
}

function FileLink({ media }: { media: Media }) {
  const [error, setError] = useState<string | null>(null);
  const download = async () => {
    setError(null);
    try {
      const direct = isDirectUrl(media.url);
      const href = direct ? media.url : URL.createObjectURL(await fetchBlob(media.url));
      const anchor = document.createElement("a");
      anchor.href = href;
      anchor.download = media.filename || "download";
      anchor.rel = "noopener";
      document.body.appendChild(anchor);
      anchor.click();
      anchor.remove();
      if (!direct) window.setTimeout(() => URL.revokeObjectURL(href), 60_000);
    } catch {
      setError("Download failed");
    }
  };
  return (
    <button type="button" className="file" onClick={() => void download()} data-testid="file-download">
      <FileIcon />
      <span className="file-name">{media.filename}</span>
      <span className="muted">{formatSize(media.size)}</span>
      {error && <span className="error-inline">{error}</span>}
    </button>
  );
}

function FileIcon() {
  return (
    <svg className="icon-svg" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
      <path d="M6 2h8l6 6v14H6z" fill="none" stroke="currentColor" strokeWidth="2" strokeLinejoin="round" />
      <path d="M14 2v6h6" fill="none" stroke="currentColor" strokeWidth="2" strokeLinejoin="round" />
    </svg>
  );
}
