"""waitroom: queue management and calling for citizen-service offices."""

__version__ = "0.1.0"
