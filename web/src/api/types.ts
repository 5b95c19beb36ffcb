// Wire shapes of the GoChat contract (ids are strings; seq and pos are numbers).

export interface User {
  id: string;
  username: string;
  display_name: string;
  bio: string;
  avatar_url: string | null;
  created_at: string;
}

export interface Me extends User {
  presence_hidden?: boolean;
}

export interface Tokens {
  access_token: string;
  refresh_token: string;
  token_type: "bearer";
  expires_in: number;
  user_id: string;
  session_id: string;
}

export interface Media {
  id: string;
  content_type: string;
  size: number;
  filename: string;
  width?: number | null;
  height?: number | null;
  url: string;
  thumbnail_url?: string | null;
}

export interface Reaction {
  emoji: string;
  count: number;
  user_ids: string[];
}

export interface Message {
  id: string;
  conversation_id: string;
  seq: number;
  pos: number;
  sender_id: string;
  client_msg_id: string;
  body: string | null;
  media: Media[];
  reply_to_seq: number | null;
  created_at: string;
  edited_at: string | null;
  deleted: boolean;
  mentions?: string[];
  reactions?: Reaction[];
}

export type Role = "owner" | "admin" | "member";

export interface Member {
  user_id: string;
  role: Role;
  read_seq?: number;
}

export interface Conversation {
  id: string;
  kind: "direct" | "group";
  title: string | null;
  created_at: string;
  last_seq: number;
  last_pos: number;
  read_seq: number;
  unread_count: number;
  mention_count?: number;
  muted?: boolean;
  last_message?: Message | null;
  members?: Member[];
}

export interface Badge {
  conversation_id: string;
  unread_count: number;
  mention_count: number;
  muted: boolean;
}

export interface Presence {
  user_id: string;
  status: "online" | "offline";
  last_seen_at: string | null;
}

/** Server frames over /ws (one JSON object per line). */
export type ServerFrame =
  | { type: "ready"; user_id: string; session_id: string; heartbeat_s: number }
  | { type: "ack"; id: string; [key: string]: unknown }
  | { type: "error"; id: string | null; code: string; message: string }
  | { type: "pong"; id: string }
  | { type: "message.created" | "message.updated" | "message.deleted"; conversation_id: string; pos: number; message?: Message; seq?: number }
  | { type: "reaction.changed"; conversation_id: string; pos: number; seq: number; reactions: Reaction[] }
  | { type: "member.joined"; conversation_id: string; pos: number; user_id: string; role?: Role }
  | { type: "member.left"; conversation_id: string; pos: number; user_id: string }
  | { type: "member.updated"; conversation_id: string; pos: number; user_id: string; role?: Role }
  | { type: "session.revoked"; session_id: string }
  | { type: "conversation.created"; conversation: Conversation }
  | { type: "conversation.updated"; conversation_id: string; pos: number; title: string | null; user_id: string }
  | { type: "conversation.muted"; conversation_id: string; muted: boolean }
  | { type: "receipt.read" | "conversation.read"; conversation_id: string; pos: number; user_id: string; seq: number }
  | { type: "typing"; conversation_id: string; user_id: string; expires_in_s?: number }
  | { type: "presence"; user_id: string; status: "online" | "offline"; last_seen_at: string | null }
  | { type: "notification"; total_unread: number; total_mentions: number; conversations: Badge[] }
  | { type: "resync_required"; conversation_id: string; last_pos?: number };

export interface ApiErrorBody {
  error?: { code?: string; message?: string; fields?: { field: string; message: string }[] };
}
