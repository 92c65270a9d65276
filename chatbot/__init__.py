"""Intent chatbot core: train an intent classifier from intents.json and answer with it.

The classifier is a Keras LSTM over the bot's words beside a pretrained multilingual sentence
vector, mixed with an n-gram model in the share that does best on held-out phrases (docs/model.md).

This package never imports Flask; the web layer in ``app/`` builds on it.
"""

__version__ = "0.1.0"
