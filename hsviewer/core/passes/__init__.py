"""Forward passes: decoder blocks found generically, hooks, the clean reference, prefix replay, batched tails."""
