"""Errors that carry a message meant for the user: what is wrong and what to do about it."""

from __future__ import annotations


class VideoEmotionsError(Exception):
    """Base of every error the service reports to its caller."""


class InputError(VideoEmotionsError):
    """The request or its data is wrong (bad segments, unknown model, video that does not decode)."""


class NotFoundError(VideoEmotionsError):
    """A session, interview or video that the request names does not exist."""


class ModelUnavailableError(VideoEmotionsError):
    """A model cannot run here: an extra, a file or a setting is missing."""


class ServiceUnavailableError(VideoEmotionsError):
    """A part the service needs (database, broker, storage) does not answer; try again later."""


class ConflictError(VideoEmotionsError):
    """The request does not fit the state of what it names (cancelling a job that has ended)."""


class PolicyRefusal(VideoEmotionsError):
    """The policy (``VE_POLICY_FILE``) refuses the request: a rule prohibits it, or requires consent
    that is not recorded (answered 451). Carries the rule and, once recorded, the failed job."""

    def __init__(self, message: str, *, action: str, reason: str, rule_number: int) -> None:
        super().__init__(message)
        self.action = action
        self.reason = reason
        self.rule_number = rule_number
        self.job_id: str | None = None
