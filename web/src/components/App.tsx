import { useEffect } from "react";
import { navigate, useRoute } from "../router";
import { bootstrap } from "../store/client";
import { markReadIfViewing } from "../store/messaging";
import { updateTitle } from "../store/notify";
import { store, useStore } from "../store/state";
import { AuthScreen } from "./AuthScreen";
import { ChatView } from "./ChatView";
import { ConversationList } from "./ConversationList";
import { ProfileScreen } from "./ProfileScreen";

export function App() {
  const route = useRoute();
  const me = useStore((s) => s.me);
  const booting = useStore((s) => s.booting);

  useEffect(() => {
    void bootstrap();
    const onVisible = () => {
      updateTitle();
      const active = store.get().activeId;
      if (active && !document.hidden) markReadIfViewing(active);
    };
    document.addEventListener("visibilitychange", onVisible);
    return () => document.removeEventListener("visibilitychange", onVisible);
  }, []);

  const authRoute = route.name === "login" || route.name === "register";
  useEffect(() => {
    if (booting) return;
    if (!me && !authRoute) navigate("/login", true);
    if (me && authRoute) navigate("/", true);
  }, [booting, me, authRoute]);

  if (booting) return <p className="splash" role="status">Loading GoChat…</p>;
  if (!me) return <AuthScreen mode={route.name === "register" ? "register" : "login"} />;

  const view = route.name === "chat" || route.name === "profile" ? "detail" : "list";
  return (
    <div className="shell" data-view={view}>
      <ConnectionBanner />
      <div className="panes">
        <ConversationList activeId={route.name === "chat" ? route.id : null} />
        <main className="pane">
          {route.name === "chat" && <ChatView id={route.id} />}
          {route.name === "profile" && <ProfileScreen />}
          {route.name !== "chat" && route.name !== "profile" && (
            <div className="empty-pane">
              <p className="muted">Pick a conversation, or start a new one.</p>
            </div>
          )}
        </main>
      </div>
    </div>
  );
}

function ConnectionBanner() {
  const status = useStore((s) => s.status);
  const detail = useStore((s) => s.statusDetail);
  const ever = useStore((s) => s.everConnected);
  if (status === "online" || (status === "connecting" && !ever)) return null;
  const text =
    status === "terminal"
      ? `Disconnected: ${detail}. Reload the page to try again.`
      : `Disconnected${detail ? ` (${detail})` : ""}. Reconnecting…`;
  return (
    <div className={`banner ${status}`} role="status" data-testid="connection-banner">
      {text}
    </div>
  );
}
