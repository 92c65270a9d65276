"""Exceptions raised by the chatbot core.

ChatbotError
├── IntentsError      intents.json is unreadable or invalid
│   └── EditError     a review action would make it invalid, or cannot be written
├── BundleError       a model bundle is missing, corrupt or inconsistent
│   └── UnsupportedModelError   the bundle holds a layer the engine cannot run
└── EncoderError      the installed sentence encoder is not the one the project pins
"""


class ChatbotError(Exception):
    """Base class for every error the core raises on purpose."""


class IntentsError(ChatbotError):
    """The intents file cannot be used for training."""


class EditError(IntentsError):
    """A change to the intents file is refused (duplicate, HTML, unknown intent...) or cannot be saved."""


class BundleError(ChatbotError):
    """A model bundle cannot be saved or loaded."""


class UnsupportedModelError(BundleError):
    """The bundle's architecture holds something the numpy engine does not implement."""


class EncoderError(ChatbotError):
    """The installed sentence encoder's weights are not the pinned ones: its vectors would differ."""
