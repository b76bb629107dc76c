// The message tree of one chat: messages keep a parent id, the chat's leaf_id picks the branch on screen.

export class Tree {
  constructor(messages = []) {
    this.byId = new Map();
    for (const message of messages) this.byId.set(message.id, message);
  }

  put(message) {
    this.byId.set(message.id, message);
  }

  get(id) {
    return this.byId.get(id);
  }

  // Children of a message (null: the roots), oldest first: the order of the "< 2/3 >" navigation.
  children(parentId) {
    return [...this.byId.values()]
      .filter((m) => (m.parent_id ?? null) === (parentId ?? null))
      .sort((a, b) => a.created_at.localeCompare(b.created_at) || a.id.localeCompare(b.id));
  }

  // Root-to-leaf path shown for a leaf.
  branch(leafId) {
    const path = [];
    let node = leafId ? this.byId.get(leafId) : undefined;
    while (node) {
      path.unshift(node);
      node = node.parent_id ? this.byId.get(node.parent_id) : undefined;
    }
    return path;
  }

  // Where a branch chosen at `id` leads: follow the newest child down to a leaf.
  deepestLatest(id) {
    let node = this.byId.get(id);
    for (;;) {
      const kids = this.children(node.id);
      if (kids.length === 0) return node.id;
      node = kids[kids.length - 1];
    }
  }
}
