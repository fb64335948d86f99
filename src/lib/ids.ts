/**
 * Client-chosen ids (sessions, topics, alphas): one rule for routes and for the events that
 * create what they reach, kept in the domain (lib may import domain, not the other way).
 */
export { CLIENT_ID_PATTERN, clientId } from "../domain/events";
