// What a test sees of a session message (World's onSessionMessage): its direction, its type,
// and for a batch or batchReply the types of its items, in order.
import { decodeMessage } from '../protocol/index';

export interface SeenMessage {
  direction: string;
  type: string;
  items?: string[];
}

export function seenMessage(m: { direction: string; bytes: Uint8Array }): SeenMessage {
  const msg = decodeMessage(m.bytes);
  const items = msg.type === 'batch' ? msg.messages : msg.type === 'batchReply' ? msg.replies : undefined;
  return { direction: m.direction, type: msg.type, ...(items ? { items: items.map((b) => decodeMessage(b).type) } : {}) };
}
