"""Learning from traffic: the message log, redaction, the review inbox, evaluation and its figures."""
