"""Intent chatbot core: train an LSTM intent classifier from intents.json and answer with it.

This package never imports Flask; the web layer in ``app/`` builds on it.
"""

__version__ = "0.1.0"
