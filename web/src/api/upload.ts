// Media upload with progress: XMLHttpRequest, because fetch() reports no upload progress.
import { ApiError, API } from "./http";
import { session } from "./session";
import type { ApiErrorBody, Media } from "./types";

export interface Upload {
  promise: Promise<Media>;
  abort: () => void;
}

export function uploadMedia(file: File, onProgress: (fraction: number) => void): Upload {
  const xhr = new XMLHttpRequest();
  const promise = new Promise<Media>((resolve, reject) => {
    xhr.open("POST", `${API}/media`);
    const token = session.accessToken;
    if (token) xhr.setRequestHeader("Authorization", `Bearer ${token}`);
    xhr.responseType = "json";
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onProgress(1);
        resolve(xhr.response as Media);
        return;
      }
      const body = (xhr.response ?? {}) as ApiErrorBody;
      reject(new ApiError(xhr.status, body.error?.code ?? "http_error", body.error?.message ?? "upload failed"));
    };
    xhr.onerror = () => reject(new ApiError(0, "network", "upload failed: cannot reach the server"));
    xhr.onabort = () => reject(new ApiError(0, "aborted", "upload cancelled"));
    const form = new FormData();
    form.append("file", file, file.name);
    xhr.send(form);
  });
  return { promise, abort: () => xhr.abort() };
}
