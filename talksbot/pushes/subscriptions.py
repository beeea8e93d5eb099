"""What a chat may subscribe to, and how often it hears: checked here, stored by the store."""

from __future__ import annotations

import re

from index.store_pushes import topic_key, visible

MIN_TOPIC_CHARS, MAX_TOPIC_CHARS = 3, 100
DIGEST_DEFAULT_MINUTES, DIGEST_MIN_MINUTES, DIGEST_MAX_MINUTES = 60, 5, 1440
# Per chat: fan-out compares each story with every topic, and /subscriptions shows a button each.
MAX_SUBSCRIPTIONS = 20


class SubscriptionError(Exception):
    """A subscription request that cannot be done; the message is shown as it is."""


_WORD = re.compile(r"[^\W_]")  # a letter or digit


def normalise_topic(topic: str) -> str:
    """'' (all coverage) or a checked topic; ``SubscriptionError`` with a clear reason. A
    topic of invisible characters or punctuation only is refused, not taken as "all
    coverage" nor listed as an empty line with a blank remove button."""
    if not (topic or "").split():
        return ""
    topic = visible(topic)
    if not _WORD.search(topic):
        raise SubscriptionError("A topic needs words, e.g. /subscribe ceasefire terms")
    if len(topic) < MIN_TOPIC_CHARS:
        raise SubscriptionError(
            f"A topic needs at least {MIN_TOPIC_CHARS} characters, e.g. /subscribe ceasefire terms"
        )
    if len(topic) > MAX_TOPIC_CHARS:
        raise SubscriptionError(
            f"That topic is {len(topic)} characters; please keep it under {MAX_TOPIC_CHARS}."
        )
    return topic


def check_digest_minutes(minutes: int) -> int:
    """0 (digests off) or an interval in bounds; ``SubscriptionError`` otherwise."""
    if minutes and not DIGEST_MIN_MINUTES <= minutes <= DIGEST_MAX_MINUTES:
        raise SubscriptionError(
            f"A digest interval is {DIGEST_MIN_MINUTES} to {DIGEST_MAX_MINUTES} minutes."
        )
    return minutes


def same_topic(a: str, b: str) -> bool:
    """Topics are the same whatever their case: "Ceasefire" and "ceasefire" are one
    subscription, and either unsubscribes it."""
    return topic_key(a) == topic_key(b)
