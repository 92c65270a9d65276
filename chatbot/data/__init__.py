"""The bot's data: intents.json read and checked (intents, entities, slots, actions), and safe edits to it."""
