"""The dialogue: the fallback decision and context, then one turn with entities, slots and actions."""
