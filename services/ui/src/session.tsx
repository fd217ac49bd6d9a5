import { createContext, useContext } from "react";
import type { Role } from "./api";

export type Session = { key: string; role: Role; user: string; signOut: () => void };
export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("no session");
  return session;
}
