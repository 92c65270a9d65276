"""Exceptions raised by the chatbot core.

ChatbotError
├── IntentsError      intents.json is unreadable or invalid
│   └── EditError     a review action would make it invalid, or cannot be written
└── BundleError       a model bundle is missing, corrupt or inconsistent
    └── UnsupportedModelError   the bundle holds a layer the engine cannot run
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
