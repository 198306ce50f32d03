// The page's state: saved conversations and the answers streaming right now.
import { ConversationStore } from './store.js';

export const store = new ConversationStore();

/** convId -> live stream state (see answers.js); several conversations may stream at once. */
export const live = new Map();
